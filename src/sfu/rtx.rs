//! RFC 4588 retransmissions (RTX) from publishers, unwrapped at the wire end of the interceptor
//! chain.
//!
//! webrtc-rs unwraps RTX only after the chain, on the way to the application, so its NACK
//! generator sees a retransmission under the RTX SSRC and never learns that the packet it asked
//! for arrived: it asks again every interval until the packet leaves its receive log, and the
//! publisher retransmits every time. Unwrapped here, below the generator, a repair counts as the
//! packet arriving, and everything above (generator, TWCC, reports, the application) sees one
//! stream.

use super::tap::ReadRewrite;
use rtc::interceptor::{Packet, StreamInfo, TaggedPacket};
use std::collections::HashMap;

/// The stream an RTX stream repairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Repair {
    rtx_payload_type: u8,
    ssrc: u32,
    payload_type: u8,
}

/// Rewrites each RTX packet of a bound remote stream into the packet it carries: the primary
/// SSRC and payload type, the original sequence number (the payload's first two bytes) and the
/// rest of the payload. RTX packets without an original sequence number (padding-only bandwidth
/// probes) pass untouched: the TWCC receiver still records their arrival, and webrtc-rs drops
/// them before the application.
#[derive(Default)]
pub(super) struct RtxUnwrap {
    /// RTX SSRC → the stream it repairs.
    repairs: HashMap<u32, Repair>,
}

impl ReadRewrite for RtxUnwrap {
    fn rewrite(&mut self, msg: &mut TaggedPacket) {
        let Packet::Rtp(packet) = &mut msg.message.packet else {
            return;
        };
        let Some(repair) = self.repairs.get(&packet.header.ssrc) else {
            return;
        };
        if packet.header.payload_type == repair.rtx_payload_type && packet.payload.len() >= 2 {
            packet.header.ssrc = repair.ssrc;
            packet.header.payload_type = repair.payload_type;
            packet.header.sequence_number =
                u16::from_be_bytes([packet.payload[0], packet.payload[1]]);
            packet.header.padding = false;
            packet.payload = packet.payload.slice(2..);
        }
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let (Some(rtx_ssrc), Some(rtx_payload_type)) = (info.ssrc_rtx, info.payload_type_rtx) {
            let repair = Repair {
                rtx_payload_type,
                ssrc: info.ssrc,
                payload_type: info.payload_type,
            };
            self.repairs.insert(rtx_ssrc, repair);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx_ssrc) = info.ssrc_rtx {
            self.repairs
                .retain(|ssrc, repair| *ssrc != rtx_ssrc || repair.ssrc != info.ssrc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tap::ReadTap;
    use super::*;
    use rtc::interceptor::{AttributedPacket, Interceptor};
    use rtc::rtp;
    use rtc::sansio::Protocol;
    use rtc::shared::TransportContext;
    use std::time::Instant;

    const PRIMARY: u32 = 0x1111;
    const RTX: u32 = 0x2222;

    fn bound() -> ReadTap<RtxUnwrap> {
        let mut unwrap = ReadTap::<RtxUnwrap>::default();
        unwrap.bind_remote_stream(&StreamInfo {
            ssrc: PRIMARY,
            ssrc_rtx: Some(RTX),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        });
        // The RTX stream is bound in its own right too, without a repair stream of its own.
        unwrap.bind_remote_stream(&StreamInfo {
            ssrc: RTX,
            payload_type: 97,
            ..Default::default()
        });
        unwrap
    }

    fn read(
        unwrap: &mut ReadTap<RtxUnwrap>,
        ssrc: u32,
        payload_type: u8,
        seq: u16,
        payload: &[u8],
    ) -> rtp::Packet {
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                padding: true,
                marker: true,
                payload_type,
                sequence_number: seq,
                timestamp: 9000,
                ssrc,
                ..Default::default()
            },
            payload: payload.to_vec().into(),
        };
        let msg = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(packet)),
        };
        unwrap.handle_read(msg).unwrap();
        match unwrap.poll_read().expect("passed on").message.packet {
            Packet::Rtp(packet) => packet,
            other => panic!("not RTP: {other:?}"),
        }
    }

    #[test]
    fn an_rtx_packet_becomes_the_packet_it_carries() {
        let mut unwrap = bound();
        let packet = read(&mut unwrap, RTX, 97, 7, &[0x12, 0x34, 0xaa, 0xbb]);
        assert_eq!(
            (
                packet.header.ssrc,
                packet.header.payload_type,
                packet.header.sequence_number
            ),
            (PRIMARY, 96, 0x1234)
        );
        assert_eq!(&packet.payload[..], &[0xaa, 0xbb]);
        assert!(!packet.header.padding);
        assert!(packet.header.marker, "marker and timestamp are kept");
        assert_eq!(packet.header.timestamp, 9000);
    }

    #[test]
    fn media_padding_probes_and_unknown_streams_pass_untouched() {
        let mut unwrap = bound();
        let media = read(&mut unwrap, PRIMARY, 96, 5, &[1, 2, 3]);
        assert_eq!(
            (media.header.ssrc, media.header.sequence_number),
            (PRIMARY, 5)
        );
        let probe = read(&mut unwrap, RTX, 97, 8, &[]);
        assert_eq!((probe.header.ssrc, probe.header.sequence_number), (RTX, 8));
        let other_type = read(&mut unwrap, RTX, 100, 9, &[0, 1, 2]);
        assert_eq!(other_type.header.ssrc, RTX);
        let stranger = read(&mut unwrap, 0x3333, 97, 10, &[0, 1, 2]);
        assert_eq!(stranger.header.ssrc, 0x3333);
    }

    #[test]
    fn unbinding_the_primary_forgets_its_rtx_stream() {
        let mut unwrap = bound();
        unwrap.unbind_remote_stream(&StreamInfo {
            ssrc: PRIMARY,
            ssrc_rtx: Some(RTX),
            payload_type: 96,
            payload_type_rtx: Some(97),
            ..Default::default()
        });
        let packet = read(&mut unwrap, RTX, 97, 7, &[0x12, 0x34, 0xaa]);
        assert_eq!(packet.header.ssrc, RTX);
    }
}
