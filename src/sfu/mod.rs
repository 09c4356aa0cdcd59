//! The SFU: a registry actor that owns the rooms, room actors, per-track forwarders and
//! per-participant sessions.

pub mod forwarder;
pub mod http_session;
pub mod membership;
pub mod participant;
pub mod peer;
pub mod ports;
pub mod publisher;
pub mod room;
mod rtc_config;
mod rtx;
mod speaker;
pub mod subscriber;
mod tap;

use room::{JoinError, JoinRequest, Joined, Room, RoomCmd, RoomHandle};
pub use rtc_config::RtcConfig;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

enum RegistryCmd {
    Join {
        room: String,
        create: bool,
        request: JoinRequest,
        reply: oneshot::Sender<Result<Joined, JoinError>>,
    },
    Find {
        room: String,
        reply: oneshot::Sender<Option<RoomHandle>>,
    },
    /// A room (of this `generation`) found itself empty after handling `joins_handled` joins.
    Idle {
        room: String,
        generation: u64,
        joins_handled: u64,
    },
}

/// Handle the rooms use to report back to the registry.
#[derive(Clone)]
pub struct RegistryHandle {
    tx: mpsc::UnboundedSender<RegistryCmd>,
}

impl RegistryHandle {
    fn room_idle(&self, room: String, generation: u64, joins_handled: u64) {
        let _ = self.tx.send(RegistryCmd::Idle {
            room,
            generation,
            joins_handled,
        });
    }
}

struct RoomEntry {
    handle: RoomHandle,
    generation: u64,
    joins_forwarded: u64,
}

/// Entry point of the SFU: join rooms, find them.
#[derive(Clone)]
pub struct Sfu {
    registry: RegistryHandle,
    pub peers: peer::PeerFactory,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// A process-unique id for a session or consumer.
pub fn next_id() -> u64 {
    SESSION_IDS.fetch_add(1, Ordering::Relaxed)
}

impl Sfu {
    pub fn start(peers: peer::PeerFactory, max_participants: usize) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let registry = RegistryHandle { tx };
        tokio::spawn(run_registry(rx, registry.clone(), max_participants));
        Self { registry, peers }
    }

    /// Joins `room`, creating it unless `create` is false.
    pub async fn join(
        &self,
        room: &str,
        create: bool,
        request: JoinRequest,
    ) -> Result<Joined, JoinError> {
        let (reply, rx) = oneshot::channel();
        let _ = self.registry.tx.send(RegistryCmd::Join {
            room: room.into(),
            create,
            request,
            reply,
        });
        rx.await
            .unwrap_or_else(|_| Err(JoinError::NoSuchRoom(room.into())))
    }

    /// The room named `room`, if it has members.
    pub async fn find(&self, room: &str) -> Option<RoomHandle> {
        let (reply, rx) = oneshot::channel();
        let _ = self.registry.tx.send(RegistryCmd::Find {
            room: room.into(),
            reply,
        });
        rx.await.ok().flatten()
    }
}

async fn run_registry(
    mut rx: mpsc::UnboundedReceiver<RegistryCmd>,
    me: RegistryHandle,
    max_participants: usize,
) {
    let mut rooms: HashMap<String, RoomEntry> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            RegistryCmd::Join {
                room,
                create,
                request,
                reply,
            } => {
                if !create && !rooms.contains_key(&room) {
                    let _ = reply.send(Err(JoinError::NoSuchRoom(room)));
                    continue;
                }
                let entry = rooms.entry(room.clone()).or_insert_with(|| {
                    let generation = next_id();
                    RoomEntry {
                        handle: Room::spawn(room, generation, max_participants, me.clone()),
                        generation,
                        joins_forwarded: 0,
                    }
                });
                entry.joins_forwarded += 1;
                entry.handle.send(RoomCmd::Join(request, reply));
            }
            RegistryCmd::Find { room, reply } => {
                let _ = reply.send(rooms.get(&room).map(|e| e.handle.clone()));
            }
            RegistryCmd::Idle {
                room,
                generation,
                joins_handled,
            } => {
                // Joins forwarded after the room reported idle are still queued in it: keep it.
                if rooms.get(&room).is_some_and(|e| {
                    e.generation == generation && e.joins_forwarded == joins_handled
                }) {
                    if let Some(entry) = rooms.remove(&room) {
                        entry.handle.send(RoomCmd::Shutdown);
                    }
                }
            }
        }
    }
}
