//! An impaired link in user space (this kernel has no netem): seeded random and burst loss,
//! delay with jitter and reordering, duplication and a bandwidth cap with a bounded queue.
//!
//! [`Link`] is the pure core: it decides what happens to each packet from its length and the
//! current instant, which the caller passes in, so tests drive it on a synthetic clock and the
//! same seed gives the same decisions. [`ImpairedRelay`] is the I/O shell: a UDP relay on
//! 127.0.0.1 with one `Link` per direction, between a webrtc-rs client and the server's media
//! port ([`candidates_via`] points the client at it).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// Burst loss: a two-state Markov chain stepped once per packet; in the bad state a packet is
/// lost with `loss_in_bad`. Bursts last `1 / p_bad_to_good` packets on average.
#[derive(Clone, Copy, Debug)]
pub struct GilbertElliott {
    pub p_good_to_bad: f64,
    pub p_bad_to_good: f64,
    pub loss_in_bad: f64,
}

/// What one direction of a link does to packets. The default is a perfect link.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkConfig {
    /// Probability that a packet is lost, independently of the others.
    pub loss: f64,
    /// Burst loss on top of `loss`.
    pub burst: Option<GilbertElliott>,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter` per packet: a packet may overtake earlier ones.
    pub jitter: Duration,
    /// Probability that a packet skips `delay` and `jitter` (netem's `reorder`): it overtakes
    /// the packets in flight.
    pub reorder: f64,
    /// Probability that a packet is delivered twice (both copies at the same instant).
    pub duplicate: f64,
    /// Bandwidth cap in bits per second: packets leave one after another at this rate.
    pub rate_bps: Option<u64>,
    /// With a cap, bytes waiting to leave beyond which a packet is dropped (tail drop).
    pub queue_bytes: usize,
}

/// What a link did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    pub dropped_random: u64,
    pub dropped_burst: u64,
    pub dropped_queue: u64,
    pub duplicated: u64,
    /// Packets delivered before a packet sent earlier.
    pub reordered: u64,
}

impl Counters {
    pub fn dropped(&self) -> u64 {
        self.dropped_random + self.dropped_burst + self.dropped_queue
    }
}

/// One direction of an impaired link.
pub struct Link {
    config: LinkConfig,
    rng: StdRng,
    bad_state: bool,
    /// When the packet being sent under the cap has left.
    busy_until: Option<Instant>,
    latest_delivery: Option<Instant>,
    pub counters: Counters,
}

impl Link {
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            bad_state: false,
            busy_until: None,
            latest_delivery: None,
            counters: Counters::default(),
        }
    }

    /// A packet of `len` bytes enters the link at `now`; returns when it arrives: no instant
    /// when it is dropped, two when it is duplicated.
    pub fn send(&mut self, len: usize, now: Instant) -> Vec<Instant> {
        self.counters.sent += 1;
        if let Some(ge) = self.config.burst {
            let flip = if self.bad_state {
                ge.p_bad_to_good
            } else {
                ge.p_good_to_bad
            };
            if self.chance(flip) {
                self.bad_state = !self.bad_state;
            }
            if self.bad_state && self.chance(ge.loss_in_bad) {
                self.counters.dropped_burst += 1;
                return Vec::new();
            }
        }
        if self.chance(self.config.loss) {
            self.counters.dropped_random += 1;
            return Vec::new();
        }
        let Some(departure) = self.transmit(len, now) else {
            self.counters.dropped_queue += 1;
            return Vec::new();
        };
        let arrival = if self.chance(self.config.reorder) {
            departure
        } else {
            let jitter = self.config.jitter.as_nanos() as u64;
            let extra = if jitter == 0 {
                0
            } else {
                self.rng.random_range(0..=jitter)
            };
            departure + self.config.delay + Duration::from_nanos(extra)
        };
        if self.latest_delivery.is_some_and(|latest| arrival < latest) {
            self.counters.reordered += 1;
        }
        self.latest_delivery = self.latest_delivery.max(Some(arrival));
        if self.chance(self.config.duplicate) {
            self.counters.duplicated += 1;
            vec![arrival, arrival]
        } else {
            vec![arrival]
        }
    }

    /// When the packet has left under the bandwidth cap, or `None` when the queue is full.
    fn transmit(&mut self, len: usize, now: Instant) -> Option<Instant> {
        let Some(rate) = self.config.rate_bps else {
            return Some(now);
        };
        let start = self.busy_until.map_or(now, |busy| busy.max(now));
        let backlog = (start - now).as_secs_f64() * rate as f64 / 8.0;
        if backlog + len as f64 > self.config.queue_bytes as f64 {
            return None;
        }
        // Rounded up, so that the link never runs faster than the cap.
        let nanos = (len as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate));
        let done = start + Duration::from_nanos(nanos as u64);
        self.busy_until = Some(done);
        Some(done)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }
}

/// A packet waiting for its delivery instant in the relay.
type Due = Reverse<(Instant, u64, Direction, Vec<u8>)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Up,
    Down,
}

/// A UDP relay on 127.0.0.1 between one client and `server`: what the client sends to
/// [`addr`](Self::addr) goes through the uplink `Link` to the server, what the server answers
/// goes through the downlink `Link` back to the client's address (learnt from its packets).
/// It stops when dropped.
pub struct ImpairedRelay {
    pub addr: SocketAddr,
    links: Arc<Mutex<[Link; 2]>>,
    uplink_rtp_dropped: Arc<Mutex<Vec<(u8, u16)>>>,
    task: JoinHandle<()>,
}

impl ImpairedRelay {
    pub async fn start(server: SocketAddr, uplink: Link, downlink: Link) -> Self {
        let client_side = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        let server_side = UdpSocket::bind("127.0.0.1:0").await.expect("bind relay");
        server_side.connect(server).await.expect("connect relay");
        let addr = client_side.local_addr().unwrap();
        let links = Arc::new(Mutex::new([uplink, downlink]));
        let uplink_rtp_dropped = Arc::default();
        let task = tokio::spawn(relay(
            client_side,
            server_side,
            Arc::clone(&links),
            Arc::clone(&uplink_rtp_dropped),
        ));
        Self {
            addr,
            links,
            uplink_rtp_dropped,
            task,
        }
    }

    pub fn uplink(&self) -> Counters {
        self.links.lock().unwrap()[0].counters
    }

    pub fn downlink(&self) -> Counters {
        self.links.lock().unwrap()[1].counters
    }

    /// `(payload type, sequence number)` of every RTP packet the uplink dropped (SRTP leaves
    /// the RTP header in the clear), in the order sent.
    pub fn uplink_rtp_dropped(&self) -> Vec<(u8, u16)> {
        self.uplink_rtp_dropped.lock().unwrap().clone()
    }
}

impl Drop for ImpairedRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client_side: UdpSocket,
    server_side: UdpSocket,
    links: Arc<Mutex<[Link; 2]>>,
    uplink_rtp_dropped: Arc<Mutex<Vec<(u8, u16)>>>,
) {
    let mut queue: BinaryHeap<Due> = BinaryHeap::new();
    let mut client = None;
    let mut order = 0u64;
    let mut up_buf = vec![0; 65536];
    let mut down_buf = vec![0; 65536];
    loop {
        let next = queue.peek().map(|Reverse((at, ..))| *at);
        let wake = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let (direction, packet) = tokio::select! {
            received = client_side.recv_from(&mut up_buf) => {
                // An ICMP error from an earlier send shows up here: not the relay's end.
                let Ok((len, from)) = received else { continue };
                client = Some(from);
                (Direction::Up, up_buf[..len].to_vec())
            }
            received = server_side.recv(&mut down_buf) => {
                let Ok(len) = received else { continue };
                (Direction::Down, down_buf[..len].to_vec())
            }
            () = wake => {
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse((at, ..))| *at <= now) {
                    let Reverse((_, _, direction, packet)) = queue.pop().unwrap();
                    let _ = match (direction, client) {
                        (Direction::Up, _) => server_side.send(&packet).await,
                        (Direction::Down, Some(to)) => client_side.send_to(&packet, to).await,
                        (Direction::Down, None) => Ok(0),
                    };
                }
                continue;
            }
        };
        let arrivals = links.lock().unwrap()[direction as usize].send(packet.len(), Instant::now());
        if arrivals.is_empty() && direction == Direction::Up {
            if let Some(header) = rtp_header(&packet) {
                uplink_rtp_dropped.lock().unwrap().push(header);
            }
        }
        for at in arrivals {
            order += 1;
            queue.push(Reverse((at, order, direction, packet.clone())));
        }
    }
}

/// `(payload type, sequence number)` of an RTP packet (RFC 3550 version 2, RTCP's packet
/// types 192-223 excluded as RFC 5761 demultiplexes them); `None` for STUN, DTLS and RTCP.
fn rtp_header(packet: &[u8]) -> Option<(u8, u16)> {
    match packet {
        [first, second, seq @ ..] if first >> 6 == 2 && !(192..=223).contains(second) => Some((
            second & 0x7f,
            u16::from_be_bytes([*seq.first()?, *seq.get(1)?]),
        )),
        _ => None,
    }
}

/// The server's UDP media address: the first UDP candidate of `sdp` (its answer).
pub fn media_address(sdp: &str) -> SocketAddr {
    sdp.lines()
        .filter_map(udp_candidate)
        .next()
        .map(|fields| {
            format!("{}:{}", fields[4], fields[5])
                .parse()
                .expect("candidate address")
        })
        .expect("a UDP candidate in the SDP")
}

/// Points a peer that applies `sdp` (the server's answer) at `relay`: every UDP candidate's
/// address becomes the relay's.
pub fn candidates_via(sdp: &str, relay: SocketAddr) -> String {
    let (ip, port) = (relay.ip().to_string(), relay.port().to_string());
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let Some(mut fields) = udp_candidate(line) else {
            out.push_str(line);
            continue;
        };
        fields[4] = &ip;
        fields[5] = &port;
        out.push_str(&format!("a=candidate:{}", fields.join(" ")));
        out.push_str(&line[line.trim_end().len()..]);
    }
    out
}

/// The fields of a UDP `a=candidate` line (foundation, component, transport, priority,
/// address, port, ...).
fn udp_candidate(line: &str) -> Option<Vec<&str>> {
    let fields: Vec<&str> = line
        .trim_end()
        .strip_prefix("a=candidate:")?
        .split(' ')
        .collect();
    (fields.len() >= 6 && fields[2].eq_ignore_ascii_case("udp")).then_some(fields)
}

/// `sdp` (a client's offer) without its candidates, so that the server learns the client's
/// address only from the packets the relay forwards.
pub fn without_candidates(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|line| !line.starts_with("a=candidate:"))
        .collect()
}
