//! The impaired-link harness (`common/impair.rs`): its decisions on a synthetic clock, and a
//! WHIP publisher sending through the UDP relay with uplink loss to a real server.

mod common;

use capstan::auth::Role;
use common::impair::{
    candidates_via, media_address, without_candidates, GilbertElliott, ImpairedRelay, Link,
    LinkConfig,
};
use common::peer::{client_factory, publish_test_media, watch_over_whep};
use common::{wait_for, TestServer};
use reqwest::StatusCode;
use signaling::protocol::MediaKind;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

const PACKETS: usize = 10_000;

/// Sends `PACKETS` packets of `len` bytes, one every `gap` from `start`; returns every
/// packet's arrivals.
fn run(link: &mut Link, len: usize, gap: Duration, start: Instant) -> Vec<Vec<Instant>> {
    (0..PACKETS)
        .map(|i| link.send(len, start + gap * i as u32))
        .collect()
}

fn lossy(loss: f64) -> LinkConfig {
    LinkConfig {
        loss,
        ..Default::default()
    }
}

#[test]
fn same_seed_same_decisions_other_seed_others() {
    let config = LinkConfig {
        loss: 0.1,
        burst: Some(GilbertElliott {
            p_good_to_bad: 0.01,
            p_bad_to_good: 0.3,
            loss_in_bad: 0.8,
        }),
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(10),
        reorder: 0.05,
        duplicate: 0.02,
        rate_bps: Some(2_000_000),
        queue_bytes: 20_000,
    };
    let start = Instant::now();
    let gap = Duration::from_millis(3);
    let a = run(&mut Link::new(config, 7), 1000, gap, start);
    let b = run(&mut Link::new(config, 7), 1000, gap, start);
    let c = run(&mut Link::new(config, 8), 1000, gap, start);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn random_loss_rate_within_tolerance() {
    let mut link = Link::new(lossy(0.1), 1);
    let arrivals = run(&mut link, 1200, Duration::from_millis(1), Instant::now());
    let lost = arrivals.iter().filter(|a| a.is_empty()).count();
    let c = link.counters;
    println!("10 % loss over {PACKETS} packets: {lost} lost");
    assert_eq!(c.sent, PACKETS as u64);
    assert_eq!(c.dropped_random, lost as u64);
    assert_eq!(c.dropped(), lost as u64);
    // Binomial standard deviation: 30 packets; the bound is 5 of them.
    assert!((850..=1150).contains(&lost), "{lost} lost");
    let perfect = run(
        &mut Link::new(LinkConfig::default(), 1),
        1200,
        Duration::from_millis(1),
        Instant::now(),
    );
    assert!(perfect.iter().all(|a| a.len() == 1));
}

#[test]
fn gilbert_elliott_loses_in_bursts() {
    let config = LinkConfig {
        burst: Some(GilbertElliott {
            p_good_to_bad: 0.005,
            p_bad_to_good: 0.25,
            loss_in_bad: 1.0,
        }),
        ..Default::default()
    };
    let mut link = Link::new(config, 3);
    let arrivals = run(&mut link, 1200, Duration::from_millis(1), Instant::now());
    let mut bursts = Vec::new();
    let mut current = 0;
    for lost in arrivals.iter().map(|a| a.is_empty()) {
        if lost {
            current += 1;
        } else if current > 0 {
            bursts.push(current);
            current = 0;
        }
    }
    let lost: usize = bursts.iter().sum::<usize>() + current;
    let mean = lost as f64 / bursts.len() as f64;
    println!(
        "Gilbert–Elliott: {lost} lost in {} bursts, mean {mean:.2} packets (expected 4), longest {}",
        bursts.len(),
        bursts.iter().max().unwrap()
    );
    assert_eq!(link.counters.dropped_burst, lost as u64);
    assert_eq!(link.counters.dropped_random, 0);
    // Stationary loss: 0.005 / (0.005 + 0.25) = 2 %.
    assert!((100..=350).contains(&lost), "{lost} lost");
    assert!((3.0..=5.0).contains(&mean), "mean burst {mean}");
}

#[test]
fn duplicates_at_the_configured_rate() {
    let config = LinkConfig {
        duplicate: 0.05,
        ..Default::default()
    };
    let mut link = Link::new(config, 4);
    let arrivals = run(&mut link, 1200, Duration::from_millis(1), Instant::now());
    let twice = arrivals.iter().filter(|a| a.len() == 2).count();
    println!("5 % duplication: {twice} of {PACKETS} twice");
    assert_eq!(link.counters.duplicated, twice as u64);
    assert!(arrivals.iter().all(|a| !a.is_empty()));
    assert!((400..=600).contains(&twice), "{twice} duplicated");
}

#[test]
fn delay_and_jitter_reorder() {
    let start = Instant::now();
    let gap = Duration::from_millis(5);
    let delay = Duration::from_millis(25);
    let steady = LinkConfig {
        delay,
        jitter: Duration::from_millis(4),
        ..Default::default()
    };
    let mut link = Link::new(steady, 5);
    let arrivals = run(&mut link, 1200, gap, start);
    for (i, a) in arrivals.iter().enumerate() {
        let sent = start + gap * i as u32;
        assert!(a[0] >= sent + delay && a[0] <= sent + delay + Duration::from_millis(4));
    }
    assert_eq!(link.counters.reordered, 0, "jitter below the packet gap");

    let jittery = LinkConfig {
        jitter: Duration::from_millis(20),
        ..steady
    };
    let mut link = Link::new(jittery, 5);
    let arrivals = run(&mut link, 1200, gap, start);
    let out_of_order = arrivals
        .windows(2)
        .filter(|pair| pair[1][0] < pair[0][0])
        .count();
    let reordered = link.counters.reordered;
    println!(
        "20 ms jitter, 5 ms apart: {reordered} reordered, {out_of_order} overtook the previous"
    );
    assert!(out_of_order > 1000, "{out_of_order}");
    assert!(reordered >= out_of_order as u64);

    let skip = LinkConfig {
        reorder: 0.1,
        ..steady
    };
    let mut link = Link::new(skip, 5);
    run(&mut link, 1200, gap, start);
    let reordered = link.counters.reordered;
    println!("10 % reorder: {reordered} packets overtook others");
    assert!((800..=1200).contains(&reordered), "{reordered}");
}

#[test]
fn bandwidth_cap_paces_and_tail_drops() {
    let rate = 1_000_000;
    let config = LinkConfig {
        rate_bps: Some(rate),
        queue_bytes: 25_000,
        ..Default::default()
    };
    // 2 Mbit/s offered: 1250-byte packets every 5 ms.
    let start = Instant::now();
    let mut link = Link::new(config, 6);
    let arrivals = run(&mut link, 1250, Duration::from_millis(5), start);
    let delivered: Vec<Instant> = arrivals.iter().flatten().copied().collect();
    let c = link.counters;
    let last = *delivered.last().unwrap();
    let throughput = (delivered.len() * 1250 * 8) as f64 / (last - start).as_secs_f64();
    println!(
        "1 Mbit/s cap, 2 offered: {} delivered, {} tail-dropped, {throughput:.0} bit/s",
        delivered.len(),
        c.dropped_queue
    );
    assert!(delivered.windows(2).all(|w| w[1] >= w[0]), "in order");
    // Each packet takes 10 ms at 1 Mbit/s: they leave at least that far apart.
    assert!(delivered
        .windows(2)
        .all(|w| w[1] - w[0] >= Duration::from_millis(10)));
    assert!(throughput <= rate as f64);
    assert!(throughput > 0.95 * rate as f64);
    assert!((4900..=5100).contains(&c.dropped_queue), "{c:?}");
    // The queue never holds more than its bound: no packet waits longer than 25 kB take.
    for (i, a) in arrivals.iter().enumerate() {
        if let Some(at) = a.first() {
            assert!(
                *at - (start + Duration::from_millis(5) * i as u32) <= Duration::from_millis(200)
            );
        }
    }

    // A burst into an idle link: what fits in the queue passes, the rest is dropped.
    let mut link = Link::new(config, 6);
    let now = Instant::now();
    let passed = (0..100)
        .filter(|_| !link.send(1250, now).is_empty())
        .count();
    assert_eq!(passed, 20);
    assert_eq!(link.counters.dropped_queue, 80);
}

/// The relay makes the decisions of a `Link` with the same seed: the datagrams that arrive are
/// exactly those the core lets through, in order and none before the delay; the downlink
/// duplicates every answer to the client's address.
#[tokio::test]
async fn relay_applies_the_seeded_decisions() {
    let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let uplink = LinkConfig {
        loss: 0.2,
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let downlink = LinkConfig {
        duplicate: 1.0,
        ..Default::default()
    };
    let relay = ImpairedRelay::start(
        server.local_addr().unwrap(),
        Link::new(uplink, 21),
        Link::new(downlink, 22),
    )
    .await;
    let mut core = Link::new(uplink, 21);
    let expected: Vec<u16> = (0..200)
        .filter(|_| !core.send(2, Instant::now()).is_empty())
        .collect();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut sent_at = Vec::new();
    for i in 0..200u16 {
        sent_at.push(Instant::now());
        client.send_to(&i.to_be_bytes(), relay.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut arrived = Vec::new();
    let mut buf = [0; 16];
    let mut from = None;
    while arrived.len() < expected.len() {
        let (len, sender) =
            tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf))
                .await
                .expect("a relayed datagram within 5 s")
                .unwrap();
        assert_eq!(len, 2);
        let i = u16::from_be_bytes([buf[0], buf[1]]);
        assert!(sent_at[i as usize].elapsed() >= Duration::from_millis(20));
        arrived.push(i);
        from = Some(sender);
    }
    assert_eq!(arrived, expected);
    assert_eq!(relay.uplink(), core.counters);

    server.send_to(b"back", from.unwrap()).await.unwrap();
    for _ in 0..2 {
        let (len, sender) =
            tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
                .await
                .expect("both copies within 5 s")
                .unwrap();
        assert_eq!((&buf[..len], sender), (&b"back"[..], relay.addr));
    }
    assert_eq!(relay.downlink().duplicated, 1);
}

/// Uplink: 10 % random loss, 25 ms delay with 5 ms jitter; downlink: 25 ms delay, 1 %
/// duplication (50 ms RTT). A WHEP viewer connected directly decodes the publisher's video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publisher_through_a_lossy_uplink() {
    let server = TestServer::start().await;
    let token = server.token("lossy", "cam", Role::Participant);
    let (publisher, _events) = client_factory().create().await.unwrap();
    let _media = publish_test_media(&publisher, "cam", Default::default()).await;
    let offer = without_candidates(&publisher.offer().await.unwrap());
    let reply = server
        .post_sdp("/whip/lossy", Some(&token), "application/sdp", offer)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let uplink = LinkConfig {
        loss: 0.1,
        delay: Duration::from_millis(25),
        jitter: Duration::from_millis(5),
        ..Default::default()
    };
    let downlink = LinkConfig {
        delay: Duration::from_millis(25),
        duplicate: 0.01,
        ..Default::default()
    };
    let server_media = media_address(&reply.body);
    let relay =
        ImpairedRelay::start(server_media, Link::new(uplink, 10), Link::new(downlink, 11)).await;
    let answer = candidates_via(&reply.body, relay.addr);
    publisher.accept_answer(answer).await.unwrap();

    wait_for(
        "both WHIP tracks published",
        Duration::from_secs(20),
        || async { server.metric("capstan_published_tracks").await >= 2.0 },
    )
    .await;
    let viewer = watch_over_whep(&server, "lossy", "cam", "viewer").await;
    let seen = &viewer.seen;
    wait_for("the viewer decoding", Duration::from_secs(30), || async {
        seen.frames_from("cam", MediaKind::Video) >= 90
    })
    .await;
    // Enough packets to measure the loss ratio (about 10 s of media).
    wait_for("1500 uplink packets", Duration::from_secs(30), || async {
        relay.uplink().sent >= 1500
    })
    .await;

    let (up, down) = (relay.uplink(), relay.downlink());
    let ratio = up.dropped_random as f64 / up.sent as f64;
    let frames = seen.frames_from("cam", MediaKind::Video);
    println!(
        "uplink: {} packets, {} dropped ({:.1} %), {} reordered; downlink: {} packets, {} duplicated; viewer decoded {frames} video frames",
        up.sent,
        up.dropped_random,
        100.0 * ratio,
        up.reordered,
        down.sent,
        down.duplicated
    );
    assert_eq!(up.dropped(), up.dropped_random);
    // Binomial standard deviation at 1500 packets: 0.8 %.
    assert!((0.07..=0.13).contains(&ratio), "uplink loss {ratio}");
    assert!(down.sent > 0 && down.dropped() == 0, "{down:?}");
    assert!(frames > 0);
    server.assert_clean_log();
}
