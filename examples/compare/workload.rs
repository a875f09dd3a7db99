//! The standard workloads (conc-map-bench's, plus read-only) and the shared settings.

use std::time::Duration;

/// One operation of a mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// dict: `get`; list: `get(i)`.
    Read,
    /// dict: insert a fresh key; list: `append`.
    Insert,
    /// dict: remove the thread's oldest key; list: `pop()`.
    Remove,
    /// dict: overwrite a key if present; list: `set(i, v)`.
    Update,
}

/// A workload: percentages of each operation and how full the container starts.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub name: &'static str,
    pub read: u8,
    pub insert: u8,
    pub remove: u8,
    pub update: u8,
    /// Fraction of the capacity (2^cap_log2) filled before the clock starts.
    pub prefill: f64,
    /// One more thread writes beside the `read` threads (a dict: inserts and removes keys the
    /// readers never look up; a list: overwrites items), and only the reads are counted: what
    /// a writer costs the readers when they share no entry with it.
    pub writer: bool,
}

pub const READ_ONLY: Workload = Workload {
    name: "read-only",
    read: 100,
    insert: 0,
    remove: 0,
    update: 0,
    prefill: 0.75,
    writer: false,
};
pub const READ_HEAVY: Workload = Workload {
    name: "read-heavy",
    read: 98,
    insert: 1,
    remove: 1,
    update: 0,
    prefill: 0.75,
    writer: false,
};
pub const WRITE_HEAVY: Workload = Workload {
    name: "write-heavy",
    read: 50,
    insert: 25,
    remove: 25,
    update: 0,
    prefill: 0.75,
    writer: false,
};
pub const EXCHANGE: Workload = Workload {
    name: "exchange",
    read: 10,
    insert: 40,
    remove: 40,
    update: 10,
    prefill: 0.75,
    writer: false,
};
pub const RAPID_GROW: Workload = Workload {
    name: "rapid-grow",
    read: 5,
    insert: 80,
    remove: 5,
    update: 10,
    prefill: 0.0,
    writer: false,
};

pub const GROW: Workload = Workload {
    name: "grow",
    read: 0,
    insert: 100,
    remove: 0,
    update: 0,
    prefill: 0.0,
    writer: false,
};

pub const BESIDE_WRITER: Workload = Workload {
    name: "beside-writer",
    read: 100,
    insert: 0,
    remove: 0,
    update: 0,
    prefill: 0.75,
    writer: true,
};

pub const ALL: [Workload; 7] = [
    READ_ONLY,
    READ_HEAVY,
    WRITE_HEAVY,
    EXCHANGE,
    RAPID_GROW,
    GROW,
    BESIDE_WRITER,
];

impl Workload {
    /// The 100 operations of one pass, shuffled with a fixed seed (as bustle does).
    pub fn ops(&self) -> [Op; 100] {
        let mut ops = Vec::with_capacity(100);
        for (op, n) in [
            (Op::Read, self.read),
            (Op::Insert, self.insert),
            (Op::Remove, self.remove),
            (Op::Update, self.update),
        ] {
            ops.extend(std::iter::repeat_n(op, n as usize));
        }
        assert_eq!(ops.len(), 100, "{}: mix must add up to 100%", self.name);
        let mut rng = crate::harness::Rng::new(0xb5_5e1e);
        for i in (1..100).rev() {
            ops.swap(i, rng.below(i + 1));
        }
        ops.try_into().unwrap()
    }

    pub fn describe(
        &self,
        what: &str,
        cap_log2: u32,
        read: &str,
        ins: &str,
        rem: &str,
        upd: &str,
    ) -> String {
        let mut parts = Vec::new();
        for (p, name) in [
            (self.read, read),
            (self.insert, ins),
            (self.remove, rem),
            (self.update, upd),
        ] {
            if p > 0 {
                parts.push(format!("{p}% {name}"));
            }
        }
        format!(
            "{what}: {}; prefilled to {:.0}% of 2^{cap_log2} = {} entries{}",
            parts.join(", "),
            self.prefill * 100.0,
            (self.prefill * (1u64 << cap_log2) as f64) as u64,
            if self.writer {
                "; N reader threads and one more thread that writes (dict: inserts and \
                 removes keys the readers never look up; list: set(i)); only the reads count"
            } else {
                ""
            },
        )
    }
}

/// The contenders that serve as limits (see `report::Group::limit`).
pub const LIMITS: [&str; 7] = [
    "std HashMap",
    "std HashMap frozen",
    "std Vec",
    "std Vec frozen",
    "plain counter",
    "unsynchronized",
    "FrozenDict.get (borrowed)",
];

/// Settings shared by every suite.
pub struct Settings {
    pub threads: Vec<usize>,
    pub duration: Duration,
    /// Rounds: the suites run this many times over, one measurement of each cell per round
    /// (on a fresh container), and each cell keeps its best. Spreading one cell's
    /// measurements over the run, rather than taking them back to back, gives every
    /// contender the same chance at the machine's better moments (see
    /// `harness::round_trip_ns`).
    pub repeat: usize,
    pub cap_log2: u32,
    /// Run only the contenders whose name contains one of these (case-insensitive).
    pub only: Vec<String>,
    /// Run only these workloads (by name); empty: all.
    pub workloads: Vec<String>,
}

impl Settings {
    /// Whether `--only` selects this contender; the limits (the ratio's reference) always run.
    pub fn wants(&self, contender: &str) -> bool {
        let c = contender.to_lowercase();
        LIMITS.contains(&contender)
            || self.only.is_empty()
            || self.only.iter().any(|o| c.contains(&o.to_lowercase()))
    }

    pub fn wants_workload(&self, name: &str) -> bool {
        self.workloads.is_empty() || self.workloads.iter().any(|w| w == name)
    }

    pub fn cap(&self) -> u64 {
        1 << self.cap_log2
    }
}
