//! Minimal RTP header validation (RFC 3550) for filtering garbage before it reaches GStreamer.

/// The packet is not RTP version 2, or is shorter than its own header and padding claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The header fields the recorder checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Synchronization source.
    pub ssrc: u32,
}

/// Parses and bounds-checks an RTP packet; the payload must be non-empty.
pub fn parse(packet: &[u8]) -> Result<Header, Malformed> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return Err(Malformed);
    }
    let csrc_len = usize::from(packet[0] & 0x0f) * 4;
    let mut header_len = 12 + csrc_len;
    if packet[0] & 0x10 != 0 {
        let ext = packet
            .get(header_len + 2..header_len + 4)
            .ok_or(Malformed)?;
        header_len += 4 + usize::from(u16::from_be_bytes([ext[0], ext[1]])) * 4;
    }
    let padding = if packet[0] & 0x20 != 0 {
        usize::from(*packet.last().unwrap_or(&0))
    } else {
        0
    };
    // A packet of padding only is valid (Chromium's bandwidth probes use the media SSRC and
    // sequence numbers): it goes on so the jitter buffer sees no gap; depayloaders skip it.
    let padding_only = padding > 0 && header_len + padding == packet.len();
    if header_len + padding >= packet.len() && !padding_only {
        return Err(Malformed);
    }
    Ok(Header {
        payload_type: packet[1] & 0x7f,
        ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x80 | pt, 0, 1, 0, 0, 0, 9];
        p.extend(ssrc.to_be_bytes());
        p.extend(payload);
        p
    }

    #[test]
    fn accepts_a_plain_packet() {
        let h = parse(&packet(96, 0xdead_beef, &[1, 2, 3])).unwrap();
        assert_eq!(
            h,
            Header {
                payload_type: 96,
                ssrc: 0xdead_beef
            }
        );
    }

    #[test]
    fn rejects_short_wrong_version_and_empty_payload() {
        assert_eq!(parse(&[0x80; 5]), Err(Malformed));
        let mut p = packet(96, 1, &[1]);
        p[0] = 0x40;
        assert_eq!(parse(&p), Err(Malformed));
        assert_eq!(parse(&packet(96, 1, &[])), Err(Malformed));
    }

    #[test]
    fn accepts_a_padding_only_packet() {
        let mut p = packet(96, 7, &[0, 0, 0, 4]);
        p[0] |= 0x20;
        assert_eq!(parse(&p).map(|h| h.ssrc), Ok(7));
        let last = p.len() - 1;
        p[last] = 5; // more padding than the packet holds
        assert_eq!(parse(&p), Err(Malformed));
    }

    #[test]
    fn checks_csrc_extension_and_padding_bounds() {
        let mut p = packet(96, 1, &[0; 4]);
        p[0] |= 0x02; // two CSRCs = 8 bytes, only 4 present
        assert_eq!(parse(&p), Err(Malformed));
        let mut p = packet(96, 1, &[0xbe, 0xde, 0, 1, 1, 2, 3, 4, 9]);
        p[0] |= 0x10; // one-word extension, then a 1-byte payload
        assert!(parse(&p).is_ok());
        let mut p = packet(96, 1, &[1, 2, 200]);
        p[0] |= 0x20; // padding longer than the packet
        assert_eq!(parse(&p), Err(Malformed));
    }
}
