//! The `serde` feature: dicts as maps in insertion order, lists as sequences, frozen views like
//! their containers; round trips through a binary format rebuild equal, mutable containers.
#![cfg(feature = "serde")]

use gilfree::{GilFreeDict, GilFreeList, LockedDict, LockedList};

fn order_of(bytes: &[u8]) -> Vec<(String, i64)> {
    // bincode writes a map exactly as a sequence of pairs: read it back as one.
    bincode::deserialize(bytes).unwrap()
}

#[test]
fn dicts_serialize_as_maps_in_insertion_order() {
    let pairs = [("zeta", 1), ("alpha", 2), ("mid", 3)].map(|(k, v)| (k.to_string(), v));
    let g: GilFreeDict<String, i64> = GilFreeDict::from(pairs.clone());
    g.insert("alpha".to_string(), 20).unwrap(); // overwrite keeps the position
    let l: LockedDict<String, i64> = pairs.iter().cloned().collect();
    l.insert("alpha".to_string(), 20).unwrap();
    let want = vec![
        ("zeta".to_string(), 1),
        ("alpha".to_string(), 20),
        ("mid".to_string(), 3),
    ];
    let gb = bincode::serialize(&g).unwrap();
    let lb = bincode::serialize(&l).unwrap();
    assert_eq!(order_of(&gb), want);
    assert_eq!(gb, lb);
    let back: GilFreeDict<String, i64> = bincode::deserialize(&gb).unwrap();
    assert_eq!(back, g);
    assert_eq!(
        back.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["zeta", "alpha", "mid"]
    );
    back.insert("new".to_string(), 4).unwrap(); // mutable
    let back: LockedDict<String, i64> = bincode::deserialize(&lb).unwrap();
    assert_eq!(back, l);
    // A frozen view serializes like its dict.
    g.freeze().unwrap();
    assert_eq!(bincode::serialize(&g.frozen().unwrap()).unwrap(), gb);
}

#[test]
fn lists_serialize_as_sequences() {
    let g = GilFreeList::from([3u64, 1, 2]);
    let l = LockedList::from([3u64, 1, 2]);
    let gb = bincode::serialize(&g).unwrap();
    assert_eq!(gb, bincode::serialize(&vec![3u64, 1, 2]).unwrap());
    assert_eq!(gb, bincode::serialize(&l).unwrap());
    let back: GilFreeList<u64> = bincode::deserialize(&gb).unwrap();
    assert_eq!(back.snapshot(), vec![3, 1, 2]);
    let back: LockedList<u64> = bincode::deserialize(&gb).unwrap();
    back.append(4).unwrap();
    assert_eq!(back.snapshot(), vec![3, 1, 2, 4]);
    g.freeze().unwrap();
    assert_eq!(bincode::serialize(&g.frozen().unwrap()).unwrap(), gb);
}
