use std::ops::Bound;

use super::*;

fn counter(seed: u64) -> Counter {
    Counter {
        period_start: 1_795_996_800,
        first_period_start: 1_795_996_800 - 86_400 * 30,
        limit: 1_000,
        kind: 2,
        day: 2_461_376,
        budget: 1_000 + seed,
        reserved: 10 + seed,
        used: 5 + seed,
        day_used_base: seed,
        allowance: 1_000,
        generation: seed % 7,
    }
}

fn all(packed: &Packed) -> Vec<(String, String, Counter)> {
    let mut out: Vec<_> = packed
        .counters()
        .map(|(p, k, c)| (p.to_owned(), String::from_utf8_lossy(k).into_owned(), c))
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

/// The index holds exactly one entry per counter, and each counter is found
/// by its own ids in its own slot.
fn check_index(packed: &Packed) {
    assert_eq!(
        packed.index.len(),
        packed.len(),
        "one index entry a counter"
    );
    for (number, slot) in (0u32..).zip(&packed.slots) {
        if slot.plan == VACANT {
            continue;
        }
        let plan = packed
            .plans
            .get(slot.plan)
            .expect("a held slot's plan is interned");
        let key = String::from_utf8_lossy(packed.key_bytes(&slot.key)).into_owned();
        assert_eq!(packed.find_slot(plan, &key), Some(number), "{plan}/{key}");
    }
}

#[test]
fn a_slot_is_48_bytes_and_a_key_code_16() {
    assert_eq!(size_of::<Slot>(), 48);
    assert_eq!(size_of::<KeyCode>(), 16);
}

#[test]
fn key_ids_inline_at_the_limit_and_interned_past_it() {
    let mut packed = Packed::default();
    let at_limit = "k".repeat(INLINE_KEY_BYTES);
    let past = "k".repeat(INLINE_KEY_BYTES + 1);
    let long = "x".repeat(300);
    for (i, key) in ["", at_limit.as_str(), past.as_str(), long.as_str()]
        .into_iter()
        .enumerate()
    {
        packed.insert("plan", key, &counter(i as u64));
    }
    assert_eq!(packed.len(), 4);
    assert_eq!(packed.get("plan", ""), Some(counter(0)));
    assert_eq!(packed.get("plan", &at_limit), Some(counter(1)));
    assert_eq!(packed.get("plan", &past), Some(counter(2)));
    assert_eq!(packed.get("plan", &long), Some(counter(3)));
    // A prefix of a long id is another key.
    assert_eq!(packed.get("plan", &long[..299]), None);
    assert_eq!(
        packed.get("plan", &past[..INLINE_KEY_BYTES]),
        Some(counter(1))
    );
    // Only the two long ids are interned, once each.
    assert_eq!(packed.keys.entries.len(), 2);
    let ids: Vec<String> = all(&packed).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(ids, ["", &at_limit, &past, &long]);
}

#[test]
fn a_long_key_id_in_many_plans_is_interned_once_and_released_with_its_last_user() {
    let mut packed = Packed::default();
    let long = "a-key-id-longer-than-fifteen-bytes";
    for plan in 0..50 {
        packed.insert(&format!("plan-{plan}"), long, &counter(plan));
    }
    packed.put_day(
        "plan-0",
        long,
        7,
        DayRec {
            used: 1,
            remaining: 2,
        },
    );
    assert_eq!(packed.keys.entries.len(), 1);
    for plan in 0..50 {
        assert_eq!(
            packed.get(&format!("plan-{plan}"), long),
            Some(counter(plan))
        );
        packed.remove(&format!("plan-{plan}"), long);
    }
    // The day record still names the key.
    assert_eq!(packed.keys.find(&packed.hasher, long), Some(0));
    packed.remove_day("plan-0", long, 7);
    assert_eq!(packed.keys.find(&packed.hasher, long), None);
    assert_eq!(packed.plans.find(&packed.hasher, "plan-0"), None);
    assert!(
        packed.keys.entries.is_empty(),
        "the interner gave its memory back"
    );
}

#[test]
fn many_plans_keep_their_counters_apart() {
    let mut packed = Packed::default();
    for plan in 0..400u64 {
        for key in 0..5u64 {
            packed.insert(
                &format!("p{plan}"),
                &format!("k{key}"),
                &counter(plan * 5 + key),
            );
        }
    }
    assert_eq!(packed.len(), 2_000);
    for plan in 0..400u64 {
        for key in 0..5u64 {
            assert_eq!(
                packed.get(&format!("p{plan}"), &format!("k{key}")),
                Some(counter(plan * 5 + key))
            );
        }
    }
    check_index(&packed);
    assert_eq!(packed.plan_key_ids("p399"), ["k0", "k1", "k2", "k3", "k4"]);
    assert!(packed.plan_key_ids("p400").is_empty());
}

#[test]
fn terms_follow_a_period_rollover_and_are_dropped_with_their_last_counter() {
    let mut packed = Packed::default();
    for key in 0..100 {
        packed.insert("plan", &format!("k{key}"), &counter(key));
    }
    assert_eq!(packed.terms.len(), 1, "one period: one set of terms");
    // The next period, for half the keys.
    let next = |seed| Counter {
        period_start: 1_795_996_800 + 31 * 86_400,
        day: 2_461_407,
        generation: 1,
        ..counter(seed)
    };
    for key in 0..50 {
        packed.insert("plan", &format!("k{key}"), &next(key));
    }
    assert_eq!(packed.terms.len(), 2);
    for key in 0..100 {
        let expected = if key < 50 { next(key) } else { counter(key) };
        assert_eq!(packed.get("plan", &format!("k{key}")), Some(expected));
    }
    for key in 50..100 {
        packed.insert("plan", &format!("k{key}"), &next(key));
    }
    assert_eq!(packed.terms.len(), 1, "the old period's terms are dropped");
}

impl<T> Interner<T> {
    fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }
}

#[test]
fn a_reused_slot_is_found_only_by_its_new_ids() {
    let mut packed = Packed::default();
    packed.insert("plan", "old-key", &counter(1));
    packed.insert("plan", "other", &counter(2));
    let old_slot = packed.find_slot("plan", "old-key");
    packed.remove("plan", "old-key");
    assert_eq!(packed.get("plan", "old-key"), None);
    packed.insert("plan", "new-key", &counter(3));
    assert_eq!(
        packed.find_slot("plan", "new-key"),
        old_slot,
        "the freed slot is reused"
    );
    assert_eq!(
        packed.get("plan", "old-key"),
        None,
        "no alias of the new key"
    );
    assert!(!packed.contains("plan", "old-key"));
    assert_eq!(packed.get("plan", "new-key"), Some(counter(3)));
    assert_eq!(packed.get("plan", "other"), Some(counter(2)));
    // The same with long ids, whose interned numbers are reused too.
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    packed.insert("plan", &a, &counter(4));
    packed.remove("plan", &a);
    packed.insert("plan", &b, &counter(5));
    assert_eq!(packed.get("plan", &a), None);
    assert_eq!(packed.get("plan", &b), Some(counter(5)));
    // Removing the freed pair again touches nothing.
    packed.remove("plan", "old-key");
    assert_eq!(packed.len(), 3);
    check_index(&packed);
}

#[test]
fn counts_too_wide_for_32_bits_are_exact_and_move_with_their_slot() {
    let mut packed = Packed::default();
    let wide = Counter {
        budget: u64::from(u32::MAX),
        used: u64::MAX,
        limit: u64::MAX,
        allowance: 1 << 47,
        ..counter(0)
    };
    packed.insert("plan", "wide", &wide);
    packed.insert("plan", "narrow", &counter(9));
    assert_eq!(packed.get("plan", "wide"), Some(wide.clone()));
    assert_eq!(packed.wide.len(), 1);
    packed.insert("plan", "wide", &counter(8));
    assert_eq!(packed.get("plan", "wide"), Some(counter(8)));
    assert!(packed.wide.is_empty(), "narrow again: the wide entry goes");
    packed.insert("plan", "wide", &wide);
    packed.remove("plan", "wide");
    assert!(packed.wide.is_empty());
    packed.insert("plan", "reuses-the-slot", &counter(7));
    assert_eq!(packed.get("plan", "reuses-the-slot"), Some(counter(7)));
}

#[test]
fn counts_are_exact_across_removals_and_compaction() {
    let mut packed = Packed::default();
    let n = 3 * COMPACT_MIN_FREE as u64;
    let wide = |key: u64| Counter {
        budget: 1 << 40,
        ..counter(key)
    };
    for key in 0..n {
        let c = if key % 10 == 0 {
            wide(key)
        } else {
            counter(key)
        };
        packed.insert("plan", &format!("key-{key}"), &c);
    }
    for key in (0..n).filter(|k| k % 3 != 0) {
        packed.remove("plan", &format!("key-{key}"));
    }
    assert!(
        packed.slots.len() < n as usize,
        "removing two thirds compacted the slots"
    );
    assert_eq!(packed.len(), n.div_ceil(3) as usize);
    for key in 0..n {
        let expected = (key % 3 == 0).then(|| {
            if key % 10 == 0 {
                wide(key)
            } else {
                counter(key)
            }
        });
        assert_eq!(
            packed.get("plan", &format!("key-{key}")),
            expected,
            "key-{key}"
        );
    }
    for key in (0..n).filter(|k| k % 3 == 0) {
        packed.remove("plan", &format!("key-{key}"));
    }
    assert_eq!(packed.len(), 0);
    assert_eq!(packed.slots.capacity(), 0, "the memory went back");
    assert_eq!(packed.terms.len(), 0);
    assert_eq!(packed.plans.len(), 0);
}

#[test]
fn usage_records_by_pair_and_day() {
    let mut packed = Packed::default();
    let long = "l".repeat(20);
    for day in 1..=5 {
        let rec = DayRec {
            used: day as u64,
            remaining: 100 - day as u64,
        };
        packed.put_day("plan", "k", day, rec);
        packed.put_day("plan", &long, day, rec);
        packed.put_day(
            "other",
            "k",
            day,
            DayRec {
                used: 0,
                remaining: 0,
            },
        );
    }
    packed.put_day(
        "plan",
        "k",
        3,
        DayRec {
            used: 30,
            remaining: 0,
        },
    );
    assert_eq!(
        packed.day("plan", "k", 3),
        Some(DayRec {
            used: 30,
            remaining: 0
        })
    );
    let days: Vec<i32> = packed
        .days("plan", "k", Bound::Included(2), Bound::Included(4))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(days, [2, 3, 4]);
    let before_3: Vec<i32> = packed
        .days("plan", &long, Bound::Unbounded, Bound::Excluded(3))
        .map(|(d, _)| d)
        .collect();
    assert_eq!(before_3, [1, 2]);
    assert_eq!(
        packed
            .days("plan", "missing", Bound::Unbounded, Bound::Unbounded)
            .count(),
        0
    );
    assert_eq!(packed.plan_key_ids("plan"), ["k".to_owned(), long.clone()]);
    for day in 1..=5 {
        packed.remove_day("plan", &long, day);
    }
    assert_eq!(packed.keys.len(), 0);
    assert_eq!(packed.plan_key_ids("plan"), ["k"]);
}

#[test]
fn counts_set_in_place_cross_into_and_out_of_the_wide_map() {
    let mut packed = Packed::default();
    packed.insert("p", "k", &counter(1));
    packed.insert("p", "other", &counter(2));
    let (number, mut c) = packed.get_numbered("p", "k").expect("held");
    c.reserved += 1;
    c.used += 1;
    packed.set_counts(number, &c);
    assert_eq!(packed.get("p", "k"), Some(c.clone()), "narrow, in place");
    assert!(packed.wide.is_empty());

    // A count of u32::MAX or more goes to the side map, exactly.
    c.budget = u64::from(u32::MAX) + 10;
    c.reserved = u64::from(u32::MAX);
    c.used = u64::from(u32::MAX);
    packed.set_counts(number, &c);
    assert_eq!(packed.get("p", "k"), Some(c.clone()), "wide");
    assert_eq!(packed.wide.len(), 1);
    c.used += 1;
    c.reserved += 1;
    packed.set_counts(number, &c);
    assert_eq!(packed.get("p", "k"), Some(c.clone()), "wide, updated");

    // Back below: out of the side map.
    let narrow = counter(3);
    packed.set_counts(number, &narrow);
    assert_eq!(packed.get("p", "k"), Some(narrow));
    assert!(packed.wide.is_empty());
    assert_eq!(
        packed.get("p", "other"),
        Some(counter(2)),
        "the neighbour is untouched"
    );
    check_index(&packed);
}
