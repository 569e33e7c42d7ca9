//! The collision rule of simultaneous rekeys (RFC 7296 §2.8.1, §2.8.2): when both ends rekey
//! the same SA at once, two new SAs exist; the one made by the exchange that carried the
//! lowest of the four nonces is redundant, and the end that initiated that exchange deletes
//! it. Nonces compare as unsigned byte strings (a shorter prefix is the lower).

/// The lowest nonce of one exchange.
fn lowest<'a>(a: &'a [u8], b: &'a [u8]) -> &'a [u8] {
    a.min(b)
}

/// Whether the exchange we initiated (nonces `ours`: our Ni and the peer's Nr) lost against
/// the peer's (its Ni and our Nr): it holds the lowest of the four nonces.
pub fn our_exchange_loses(ours: (&[u8], &[u8]), theirs: (&[u8], &[u8])) -> bool {
    lowest(ours.0, ours.1) < lowest(theirs.0, theirs.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_of_four_nonces_loses() {
        let n = |b: u8| vec![b; 32];
        // Our exchange holds 0x01: it loses.
        assert!(our_exchange_loses((&n(5), &n(1)), (&n(2), &n(9))));
        assert!(our_exchange_loses((&n(1), &n(7)), (&n(2), &n(3))));
        // Theirs holds the lowest.
        assert!(!our_exchange_loses((&n(5), &n(4)), (&n(9), &n(3))));
        assert!(!our_exchange_loses((&n(5), &n(4)), (&n(0), &n(0xff))));
        // Both ends reach opposite verdicts from their own view.
        let (a_ni, b_nr, b_ni, a_nr) = (n(8), n(3), n(6), n(4));
        let a_loses = our_exchange_loses((&a_ni, &b_nr), (&b_ni, &a_nr));
        let b_loses = our_exchange_loses((&b_ni, &a_nr), (&a_ni, &b_nr));
        assert!(a_loses && !b_loses);
        // Byte strings: the first differing byte decides, then length.
        let mut low = n(7);
        low[31] = 0;
        assert!(our_exchange_loses((&low, &n(9)), (&n(7), &n(8))));
        assert!(our_exchange_loses((&n(7)[..16], &n(9)), (&n(7), &n(8))));
    }
}
