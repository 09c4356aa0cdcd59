//! Per-client limits, I/O-free: token-bucket rate limits on an explicit clock, counted slots
//! (connections, pending sessions) released on drop, and the client IP behind trusted proxies.

use ipnet::IpNet;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// A rate that is not `RATE[/s][,BURST]` with positive numbers, nor `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a rate such as 50/s,200, nor off")]
pub struct BadRate;

impl Rate {
    /// Parses `RATE[/s][,BURST]`, e.g. `50/s,200`; the burst defaults to the rate.
    /// `off` means no limit (`None`).
    pub fn parse(text: &str) -> Result<Option<Rate>, BadRate> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let err = || BadRate;
        let (rate, burst) = match text.split_once(',') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (text, None),
        };
        let rate = rate.trim();
        let per_second: f64 = rate
            .strip_suffix("/s")
            .unwrap_or(rate)
            .trim()
            .parse()
            .map_err(|_| err())?;
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(err());
        }
        let burst = match burst {
            Some(b) => b.trim().parse().map_err(|_| err())?,
            None => per_second.ceil() as u32,
        };
        if burst == 0 {
            return Err(err());
        }
        Ok(Some(Rate { per_second, burst }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Keyed token buckets: each key may spend `burst` at once and earns `per_second` back.
/// Buckets that have filled up again are forgotten (at most once a second), so memory follows
/// the clients active in the last `burst / per_second` seconds.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    buckets: HashMap<K, Bucket>,
    pruned: Option<Instant>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: HashMap::new(),
            pruned: None,
        }
    }

    /// Spends one token of `key` at `now`; `Err` holds how long until one is available.
    pub fn check(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        self.prune(now);
        let rate = self.rate;
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        bucket.tokens = refill(*bucket, rate, now);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / rate.per_second,
            ))
        }
    }

    fn prune(&mut self, now: Instant) {
        if self
            .pruned
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.pruned = Some(now);
        let rate = self.rate;
        self.buckets
            .retain(|_, b| refill(*b, rate, now) < f64::from(rate.burst));
    }
}

fn refill(bucket: Bucket, rate: Rate, now: Instant) -> f64 {
    let earned = now.saturating_duration_since(bucket.at).as_secs_f64() * rate.per_second;
    (bucket.tokens + earned).min(f64::from(rate.burst))
}

/// Counts held slots per key, e.g. open connections per client IP; a [`Slot`] gives its
/// place back when dropped.
pub struct Slots<K: Hash + Eq + Clone> {
    held: Arc<Mutex<HashMap<K, usize>>>,
}

impl<K: Hash + Eq + Clone> Clone for Slots<K> {
    fn clone(&self) -> Self {
        Self {
            held: Arc::clone(&self.held),
        }
    }
}

impl<K: Hash + Eq + Clone> Default for Slots<K> {
    fn default() -> Self {
        Self {
            held: Arc::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Slots<K> {
    /// A slot for `key` when it holds fewer than `max`; `None` otherwise.
    pub fn acquire(&self, key: K, max: usize) -> Option<Slot<K>> {
        let mut held = self.held.lock().expect("slots lock");
        let count = held.entry(key.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            held: Arc::clone(&self.held),
            key,
        })
    }
}

/// One held place of a [`Slots`] count.
pub struct Slot<K: Hash + Eq> {
    held: Arc<Mutex<HashMap<K, usize>>>,
    key: K,
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut held = self.held.lock().expect("slots lock");
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy itself (entries left of it
/// were written by the client and prove nothing). All entries trusted: the left-most one.
/// An unparsable entry ends the walk at the last address known good.
pub fn client_ip(peer: SocketAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    let entries = forwarded_for
        .iter()
        .rev()
        .flat_map(|header| header.rsplit(','))
        .map(str::trim);
    for entry in entries {
        let Some(ip) = parse_forwarded_ip(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an IP, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Parses a trusted proxy: an IP (`10.0.0.1`) or a network (`10.0.0.0/8`, `fd00::/8`).
pub fn parse_net(text: &str) -> Result<IpNet, std::net::AddrParseError> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: f64, burst: u32) -> Rate {
        Rate { per_second, burst }
    }

    #[test]
    fn rates_parse() {
        assert_eq!(Rate::parse("50/s,200"), Ok(Some(rate(50.0, 200))));
        assert_eq!(Rate::parse(" 2 , 5 "), Ok(Some(rate(2.0, 5))));
        assert_eq!(Rate::parse("0.5/s"), Ok(Some(rate(0.5, 1))));
        assert_eq!(Rate::parse("off"), Ok(None));
        for bad in ["", "0", "-1", "x/s", "5,0", "5,x", "inf"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(rate(2.0, 3));
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t0), Ok(()));
        }
        assert_eq!(limiter.check("a", t0), Err(Duration::from_millis(500)));
        assert_eq!(limiter.check("b", t0), Ok(()), "keys are independent");
        let later = t0 + Duration::from_millis(250);
        assert_eq!(limiter.check("a", later), Err(Duration::from_millis(250)));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(limiter.check("a", t1), Ok(()));
        assert!(limiter.check("a", t1).is_err());
        // Refused checks spend nothing: after 10 s the bucket is full again, not more.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(limiter.check("a", t2), Ok(()));
        }
        assert!(limiter.check("a", t2).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(rate(10.0, 10));
        for i in 0..1000 {
            limiter.check(i, t0).unwrap();
        }
        assert_eq!(limiter.buckets.len(), 1000);
        limiter.check(0, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(limiter.buckets.len(), 1, "only the key just used");
    }

    #[test]
    fn slots_are_counted_per_key_and_given_back() {
        let slots = Slots::default();
        let a1 = slots.acquire("a", 2).unwrap();
        let a2 = slots.acquire("a", 2).unwrap();
        assert!(slots.acquire("a", 2).is_none());
        let b = slots.acquire("b", 2).unwrap();
        assert_eq!(slots.held.lock().unwrap().get("a"), Some(&2));
        drop(a1);
        let a3 = slots.acquire("a", 2).unwrap();
        drop((a2, a3, b));
        assert!(slots.held.lock().unwrap().is_empty());
    }

    fn addr(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn client_ip_trusts_forwarded_for_only_from_trusted_proxies() {
        let trusted = [parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()];
        // No proxy configured or an untrusted peer: the header is ignored.
        assert_eq!(
            client_ip(addr("203.0.113.7"), &["1.1.1.1"], &[]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(addr("203.0.113.7"), &["1.1.1.1"], &trusted),
            ip("203.0.113.7")
        );
        // A trusted proxy: the right-most untrusted entry; a client's own spoofed prefix is
        // not believed.
        assert_eq!(
            client_ip(addr("10.0.0.2"), &["198.51.100.4"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(
                addr("10.0.0.2"),
                &["6.6.6.6, 198.51.100.4, 10.0.0.9"],
                &trusted
            ),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(addr("10.0.0.2"), &["6.6.6.6", "198.51.100.4:555"], &trusted),
            ip("198.51.100.4"),
            "several headers read as one list; a port is dropped"
        );
        // No header, only proxies, or garbage: the last address known good.
        assert_eq!(client_ip(addr("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(addr("10.0.0.2"), &["10.1.1.1"], &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(addr("10.0.0.2"), &["198.51.100.4, junk"], &trusted),
            ip("10.0.0.2")
        );
        // IPv4-mapped IPv6 peers count as their IPv4 address; IPv6 proxies work.
        assert_eq!(
            client_ip(addr("::ffff:10.0.0.2"), &["198.51.100.4"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(addr("::1"), &["[2001:db8::1]:9"], &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn nets_parse() {
        assert!(parse_net("10.0.0.1").unwrap().contains(&ip("10.0.0.1")));
        assert!(!parse_net("10.0.0.1").unwrap().contains(&ip("10.0.0.2")));
        assert!(parse_net("fd00::/8").unwrap().contains(&ip("fd12::1")));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("proxy").is_err());
    }
}
