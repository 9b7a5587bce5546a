//! Numbers as text without an allocation, for the outbound hot paths:
//! the FIX encoder and the WebSocket book messages write several on every
//! message. Any thread.

/// The decimal digits of `v` (what `format!("{v}")` writes), written into
/// `buf` without an allocation; the FIX encoder and the WebSocket book
/// messages write numbers on every outbound message.
#[inline]
pub(crate) fn decimal_digits(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_are_what_format_writes() {
        let mut buf = [0u8; 20];
        for v in [0, 7, 10, 99, 12_345, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal_digits(v, &mut buf), v.to_string().as_bytes());
        }
    }
}
