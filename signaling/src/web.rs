//! The call UI (plain HTML/CSS/JS under `signaling/web/`), embedded into the binary.

/// One embedded file of the call UI.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Join form served at `/`.
pub const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../web/index.html"),
};

/// Call page served at `/room/{room}`.
pub const ROOM: Asset = Asset {
    path: "room.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../web/room.html"),
};

/// Files served under `/static/`.
pub const STATIC: &[Asset] = &[
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../web/app.js"),
    },
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/style.css"),
    },
];

/// The static asset named `path`, if any.
pub fn static_asset(path: &str) -> Option<&'static Asset> {
    STATIC.iter().find(|a| a.path == path)
}
