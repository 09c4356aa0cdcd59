//! The configured UDP port range for media: each peer connection leases one port.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Ports of the configured range not currently leased. A plain mutex: the critical sections
/// are a set insert/remove and never await.
#[derive(Clone)]
pub struct PortPool {
    state: Arc<Mutex<PoolState>>,
}

struct PoolState {
    range: (u16, u16),
    leased: BTreeSet<u16>,
    next: u16,
}

/// A leased port, returned to the pool when dropped.
pub struct PortLease {
    pool: PortPool,
    pub port: u16,
}

impl PortPool {
    pub fn new(range: (u16, u16)) -> Self {
        Self {
            state: Arc::new(Mutex::new(PoolState {
                range,
                leased: BTreeSet::new(),
                next: range.0,
            })),
        }
    }

    /// Leases the next free port (round robin, so a just-closed socket's port rests a while).
    pub fn lease(&self) -> Option<PortLease> {
        let mut s = self.state.lock().expect("port pool poisoned");
        let (lo, hi) = s.range;
        let size = usize::from(hi - lo) + 1;
        let candidates = (s.next..=hi).chain(lo..s.next).take(size);
        let port = candidates.into_iter().find(|p| !s.leased.contains(p))?;
        s.leased.insert(port);
        s.next = if port == hi { lo } else { port + 1 };
        Some(PortLease {
            pool: self.clone(),
            port,
        })
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut s) = self.pool.state.lock() {
            s.leased.remove(&self.port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_each_port_once_and_reuses_released_ones() {
        let pool = PortPool::new((5000, 5002));
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        let c = pool.lease().unwrap();
        assert_eq!([a.port, b.port, c.port], [5000, 5001, 5002]);
        assert!(pool.lease().is_none(), "range exhausted");
        drop(b);
        assert_eq!(pool.lease().unwrap().port, 5001);
    }
}
