//! The recording catalog. [`Catalog`] is the seam (a networked store can come later for
//! multi-node deployments); [`SqliteCatalog`] is the embedded one: a SQLite file under the data
//! dir, owned by one thread that async callers talk to through a channel.

use super::state::{RecordingState, Status};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog database: {0}")]
    Db(String),
    #[error("catalog is closed")]
    Closed,
}

impl From<rusqlite::Error> for CatalogError {
    fn from(e: rusqlite::Error) -> Self {
        CatalogError::Db(e.to_string())
    }
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub room: Option<String>,
    pub user: Option<String>,
    pub status: Option<Status>,
}

/// Where recording states are kept.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync {
    /// Inserts or replaces a recording.
    async fn put(&self, recording: &RecordingState) -> Result<(), CatalogError>;
    async fn get(&self, id: &str) -> Result<Option<RecordingState>, CatalogError>;
    /// Matching recordings, newest first.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<RecordingState>, CatalogError>;
    /// Removes a recording; false when there was none.
    async fn delete(&self, id: &str) -> Result<bool, CatalogError>;
    /// How many recordings have each status (statuses with none are left out).
    async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, CatalogError>;
}

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// SQLite catalog; cheap to clone.
#[derive(Clone)]
pub struct SqliteCatalog {
    jobs: mpsc::Sender<Job>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recordings (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recordings_room ON recordings(room_id, created_at);
CREATE INDEX IF NOT EXISTS recordings_user ON recordings(user_id, created_at);
";

impl SqliteCatalog {
    /// Opens (or creates) `path` and starts the thread that owns the connection.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CatalogError::Db(e.to_string()))?;
        }
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
        conn.execute_batch(SCHEMA)?;
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("capstan-catalog".into())
            .spawn(move || {
                for job in rx {
                    job(&conn);
                }
            })
            .map_err(|e| CatalogError::Db(e.to_string()))?;
        Ok(Self { jobs })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, CatalogError> + Send + 'static,
    ) -> Result<T, CatalogError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| CatalogError::Closed)?;
        rx.await.map_err(|_| CatalogError::Closed)?
    }
}

fn decode(doc: String) -> Result<RecordingState, CatalogError> {
    serde_json::from_str(&doc).map_err(|e| CatalogError::Db(format!("corrupt row: {e}")))
}

#[async_trait::async_trait]
impl Catalog for SqliteCatalog {
    async fn put(&self, r: &RecordingState) -> Result<(), CatalogError> {
        let doc = serde_json::to_string(r).map_err(|e| CatalogError::Db(e.to_string()))?;
        let row = (
            r.recording_id.clone(),
            r.room_id.clone(),
            r.user_id.clone(),
            r.status.as_str(),
            r.created_at.clone(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO recordings (id, room_id, user_id, status, created_at, doc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET status = excluded.status, doc = excluded.doc",
                params![row.0, row.1, row.2, row.3, row.4, doc],
            )?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<RecordingState>, CatalogError> {
        let id = id.to_string();
        self.call(move |c| {
            c.query_row("SELECT doc FROM recordings WHERE id = ?1", [id], |row| {
                row.get::<_, String>(0)
            })
            .optional()?
            .map(decode)
            .transpose()
        })
        .await
    }

    async fn list(&self, f: &ListFilter) -> Result<Vec<RecordingState>, CatalogError> {
        let f = f.clone();
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT doc FROM recordings
                 WHERE (?1 IS NULL OR room_id = ?1) AND (?2 IS NULL OR user_id = ?2)
                   AND (?3 IS NULL OR status = ?3)
                 ORDER BY created_at DESC, id",
            )?;
            let docs = stmt
                .query_map(
                    params![f.room, f.user, f.status.map(Status::as_str)],
                    |row| row.get::<_, String>(0),
                )?
                .collect::<Result<Vec<_>, _>>()?;
            docs.into_iter().map(decode).collect()
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, CatalogError> {
        let id = id.to_string();
        self.call(move |c| Ok(c.execute("DELETE FROM recordings WHERE id = ?1", [id])? > 0))
            .await
    }

    async fn count_by_status(&self) -> Result<Vec<(Status, u64)>, CatalogError> {
        self.call(|c| {
            let mut stmt = c.prepare("SELECT status, COUNT(*) FROM recordings GROUP BY status")?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(s, n)| Status::parse(&s).map(|s| (s, n)))
                .collect())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::state::RecordingParams;
    use pipelines::{Format, Layout, Mode, Quality};

    fn rec(id: &str, room: &str, user: &str) -> RecordingState {
        let p = RecordingParams {
            format: Format::Webm,
            quality: Quality::Low,
            mode: Mode::Composite,
            layout: Layout::Grid,
        };
        RecordingState::new(id.into(), room, user, p, crate::storage::Backend::Local)
    }

    #[tokio::test]
    async fn put_get_list_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.db");
        let cat = SqliteCatalog::open(&path).unwrap();
        let mut a = rec("a", "r1", "alice");
        cat.put(&a).await.unwrap();
        cat.put(&rec("b", "r2", "bob")).await.unwrap();
        a.transition(Status::Recording).unwrap();
        cat.put(&a).await.unwrap();
        drop(cat);

        let cat = SqliteCatalog::open(&path).unwrap();
        assert_eq!(cat.get("a").await.unwrap().unwrap(), a);
        assert!(cat.get("zzz").await.unwrap().is_none());
        let by_room = ListFilter {
            room: Some("r1".into()),
            ..Default::default()
        };
        assert_eq!(cat.list(&by_room).await.unwrap().len(), 1);
        let recording = ListFilter {
            status: Some(Status::Recording),
            ..Default::default()
        };
        assert_eq!(cat.list(&recording).await.unwrap()[0].recording_id, "a");
        assert_eq!(cat.list(&ListFilter::default()).await.unwrap().len(), 2);
        assert!(cat.delete("b").await.unwrap());
        assert!(!cat.delete("b").await.unwrap());
        let bob = ListFilter {
            user: Some("bob".into()),
            ..Default::default()
        };
        assert!(cat.list(&bob).await.unwrap().is_empty());
        assert_eq!(
            cat.count_by_status().await.unwrap(),
            vec![(Status::Recording, 1)]
        );
    }
}
