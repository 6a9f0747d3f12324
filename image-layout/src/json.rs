//! Canonical JSON: sorted object keys, no insignificant whitespace.
//!
//! `oci-spec` keeps annotations and labels in `HashMap`s, so serializing its
//! types directly gives a different byte order from run to run. Every
//! config, manifest and index goes through [`canonical_json`] before it is
//! hashed, and the bytes hashed are the bytes stored and pushed.

use serde::Serialize;

/// Serializes `value` with object keys sorted at every depth.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    // serde_json's `Map` is a `BTreeMap` (the `preserve_order` feature is
    // not enabled in this workspace), so a round trip through `Value`
    // sorts every object's keys.
    let v = serde_json::to_value(value)?;
    serde_json::to_vec(&v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn keys_are_sorted_at_every_depth() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "mid", "beta", "omega"] {
            inner.insert(k.to_string(), 1);
        }
        let mut outer = HashMap::new();
        outer.insert("b", inner.clone());
        outer.insert("a", inner);
        let s = String::from_utf8(canonical_json(&outer).unwrap()).unwrap();
        assert_eq!(
            s,
            r#"{"a":{"alpha":1,"beta":1,"mid":1,"omega":1,"zeta":1},"b":{"alpha":1,"beta":1,"mid":1,"omega":1,"zeta":1}}"#
        );
    }
}
