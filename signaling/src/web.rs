//! The call UI (plain HTML/CSS/JS under `signaling/web/`), embedded into the binary.

use std::sync::LazyLock;

/// One embedded file of the call UI.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Content type of the pages.
pub const HTML: &str = "text/html; charset=utf-8";

/// The join form both pages share, written once in `join-form.html`.
const JOIN_FORM: &str = include_str!("../web/join-form.html");

/// Where a page takes the join form.
const JOIN_FORM_SLOT: &str = "<!-- join-form -->";

static INDEX: LazyLock<String> = LazyLock::new(|| page(include_str!("../web/index.html")));
static ROOM: LazyLock<String> = LazyLock::new(|| page(include_str!("../web/room.html")));

/// The HTTP API docs page served at `/api/docs`: it renders `/api/openapi.json`.
pub fn api_docs() -> &'static str {
    include_str!("../web/api-docs.html")
}

/// The lobby served at `/`.
pub fn index() -> &'static str {
    &INDEX
}

/// The call page served at `/room/{room}`.
pub fn room() -> &'static str {
    &ROOM
}

/// `template` with its join-form slot replaced by the form, indented like the slot.
fn page(template: &str) -> String {
    let line = template
        .lines()
        .find(|l| l.trim() == JOIN_FORM_SLOT)
        .expect("the page has a join-form slot");
    let indent = &line[..line.len() - line.trim_start().len()];
    let form: Vec<String> = JOIN_FORM.lines().map(|l| format!("{indent}{l}")).collect();
    template.replacen(line, &form.join("\n"), 1)
}

/// Content type of the ES modules.
const JS: &str = "text/javascript; charset=utf-8";

/// Files served under `/static/`: `app.js` is the entry module of both pages and imports
/// the others (no build step).
pub const STATIC: &[Asset] = &[
    Asset {
        path: "app.js",
        content_type: JS,
        body: include_str!("../web/app.js"),
    },
    Asset {
        path: "ui.js",
        content_type: JS,
        body: include_str!("../web/ui.js"),
    },
    Asset {
        path: "lobby.js",
        content_type: JS,
        body: include_str!("../web/lobby.js"),
    },
    Asset {
        path: "state.js",
        content_type: JS,
        body: include_str!("../web/state.js"),
    },
    Asset {
        path: "call.js",
        content_type: JS,
        body: include_str!("../web/call.js"),
    },
    Asset {
        path: "tiles.js",
        content_type: JS,
        body: include_str!("../web/tiles.js"),
    },
    Asset {
        path: "controls.js",
        content_type: JS,
        body: include_str!("../web/controls.js"),
    },
    Asset {
        path: "recording.js",
        content_type: JS,
        body: include_str!("../web/recording.js"),
    },
    Asset {
        path: "recordings-panel.js",
        content_type: JS,
        body: include_str!("../web/recordings-panel.js"),
    },
    Asset {
        path: "own-copy.js",
        content_type: JS,
        body: include_str!("../web/own-copy.js"),
    },
    Asset {
        path: "stats.js",
        content_type: JS,
        body: include_str!("../web/stats.js"),
    },
    Asset {
        path: "api-docs.js",
        content_type: JS,
        body: include_str!("../web/api-docs.js"),
    },
    Asset {
        path: "api-docs.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../web/api-docs.css"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_pages_carry_the_join_form_once() {
        for html in [index(), room()] {
            assert_eq!(html.matches("<form id=\"join-form\"").count(), 1);
            assert!(!html.contains(JOIN_FORM_SLOT));
            assert!(html.contains("id=\"join-note\""));
        }
        assert!(room().contains("<div id=\"overlay\""));
    }
}
