//! Results: one record per (suite, workload, contender, threads); tables, CSV and JSON.

use std::fmt::Write as _;

use crate::harness::Measured;

/// One measured cell.
#[derive(Clone, Debug)]
pub struct Record {
    pub suite: &'static str,
    pub workload: String,
    pub contender: String,
    /// A type of this crate (drawn with a thick line in the plots).
    pub ours: bool,
    pub threads: usize,
    /// The best measurement of this cell (with the round trip probed before it).
    pub best: Measured,
    /// Measurements taken of this cell (one per round; the record keeps the best).
    pub rounds: usize,
    /// The lowest throughput of those rounds, Mops/s.
    pub worst_mops: f64,
    /// The limit's throughput at this thread count (see [`Group::limit`]), once known.
    pub limit_mops: Option<f64>,
}

impl Record {
    /// Aggregate throughput, millions of operations per second.
    pub fn mops(&self) -> f64 {
        self.best.mops()
    }

    /// Wall time per operation as one thread sees it: `secs * threads / ops`.
    pub fn ns_per_op(&self) -> f64 {
        self.best.ns_per_op(self.threads)
    }

    /// Throughput relative to the limit.
    pub fn ratio(&self) -> Option<f64> {
        self.limit_mops.map(|l| self.mops() / l)
    }
}

/// The records of one (suite, workload) table, with a description and the name of the
/// contender that is the limit.
pub struct Group {
    pub suite: &'static str,
    pub workload: String,
    pub about: String,
    /// Contender whose throughput is the reference ("limit") for the ratio column: measured
    /// at the same thread count when it ran there, else its 1-thread rate times the thread
    /// count (perfect scaling).
    pub limit: String,
    pub records: Vec<Record>,
}

impl Group {
    pub fn new(suite: &'static str, workload: &str, about: String, limit: &str) -> Self {
        Group {
            suite,
            workload: workload.to_string(),
            about,
            limit: limit.to_string(),
            records: Vec::new(),
        }
    }

    /// Adds a measurement of a cell and reports it on stderr. A cell measured before (an
    /// earlier round) keeps the better of the two measurements and counts the rounds.
    pub fn push(&mut self, contender: &str, ours: bool, threads: usize, m: Measured) {
        eprintln!(
            "  {:<44} {:>2} thr  {:>9.2} Mops/s  {:>9.1} ns/op{}",
            contender,
            threads,
            m.mops(),
            m.ns_per_op(threads),
            m.round_trip_ns
                .map_or(String::new(), |rt| format!("  (round trip {rt:.0} ns)"))
        );
        self.record(contender, ours, threads, m);
    }

    /// [`push`](Self::push) without the report.
    fn record(&mut self, contender: &str, ours: bool, threads: usize, m: Measured) {
        let mops = m.mops();
        if let Some(r) = self
            .records
            .iter_mut()
            .find(|r| r.contender == contender && r.threads == threads)
        {
            r.rounds += 1;
            r.worst_mops = r.worst_mops.min(mops);
            if mops > r.mops() {
                r.best = m;
            }
            return;
        }
        self.records.push(Record {
            suite: self.suite,
            workload: self.workload.clone(),
            contender: contender.to_string(),
            ours,
            threads,
            best: m,
            rounds: 1,
            worst_mops: mops,
            limit_mops: None,
        });
    }

    /// Takes in a later round's measurements of the same suite and workload (see
    /// [`push`](Self::push)).
    pub fn merge(&mut self, later: Group) {
        for r in later.records {
            self.record(&r.contender, r.ours, r.threads, r.best);
        }
    }

    /// Fills in `limit_mops` of every record.
    pub fn settle(&mut self) {
        let limit: Vec<(usize, f64)> = self
            .records
            .iter()
            .filter(|r| r.contender == self.limit)
            .map(|r| (r.threads, r.mops()))
            .collect();
        let one = limit.iter().find(|(t, _)| *t == 1).map(|(_, m)| *m);
        for r in &mut self.records {
            r.limit_mops = limit
                .iter()
                .find(|(t, _)| *t == r.threads)
                .map(|(_, m)| *m)
                .or(one.map(|m| m * r.threads as f64));
        }
    }

    /// Thread counts that appear in this group, ascending.
    pub fn threads(&self) -> Vec<usize> {
        let mut t: Vec<usize> = self.records.iter().map(|r| r.threads).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// Contenders in the order they ran, with whether they are ours.
    pub fn contenders(&self) -> Vec<(String, bool)> {
        let mut out: Vec<(String, bool)> = Vec::new();
        for r in &self.records {
            if !out.iter().any(|(c, _)| *c == r.contender) {
                out.push((r.contender.clone(), r.ours));
            }
        }
        out
    }

    fn get(&self, contender: &str, threads: usize) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.contender == contender && r.threads == threads)
    }

    /// The table: one row per contender, per thread count Mops/s, ns/op and × limit.
    pub fn table(&self) -> String {
        let threads = self.threads();
        let mut s = String::new();
        let _ = writeln!(s, "\n## {} / {}", self.suite, self.workload);
        let _ = writeln!(s, "{}", self.about);
        let _ = writeln!(
            s,
            "ratio = throughput / limit ({}; at N threads without a measurement there: \
             its 1-thread rate x N)",
            self.limit
        );
        let name_w = self
            .contenders()
            .iter()
            .map(|(c, _)| c.len())
            .max()
            .unwrap_or(10)
            .max(10);
        let _ = write!(s, "{:<name_w$}", "contender");
        for t in &threads {
            let head = format!("{t} thread{}", if *t == 1 { "" } else { "s" });
            let _ = write!(s, " | {head:^26}");
        }
        let _ = writeln!(s);
        let _ = write!(s, "{:<name_w$}", "");
        for _ in &threads {
            let _ = write!(s, " | {:>8} {:>9} {:>7}", "Mops/s", "ns/op", "x limit");
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", "-".repeat(name_w + threads.len() * 29));
        let trips: Vec<f64> = self
            .records
            .iter()
            .filter_map(|r| r.best.round_trip_ns)
            .collect();
        let fastest = trips.iter().copied().fold(f64::INFINITY, f64::min);
        let slow = |r: &Record| {
            r.best
                .round_trip_ns
                .is_some_and(|rt| rt > SLOW_TRIP * fastest)
        };
        for (c, _) in self.contenders() {
            let _ = write!(s, "{c:<name_w$}");
            for t in &threads {
                match self.get(&c, *t) {
                    Some(r) => {
                        let mark = if slow(r) { "*" } else { "" };
                        let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.2}{mark}"));
                        let _ = write!(
                            s,
                            " | {:>8} {:>9} {:>7}",
                            fmt_num(r.mops()),
                            fmt_num(r.ns_per_op()),
                            ratio
                        );
                    }
                    None => {
                        let _ = write!(s, " | {:>8} {:>9} {:>7}", "-", "-", "-");
                    }
                }
            }
            let _ = writeln!(s);
        }
        if !trips.is_empty() {
            let slowest = trips.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                s,
                "cross-thread round trip around the kept measurements: {fastest:.0} - \
                 {slowest:.0} ns{}",
                if self.records.iter().any(slow) {
                    format!(
                        "; * kept a measurement taken while it was over {SLOW_TRIP}x the \
                         fastest (cores apart: compare such cells with care)"
                    )
                } else {
                    String::new()
                }
            );
        }
        s
    }
}

/// A round trip this many times the table's fastest marks a cell (see `harness::round_trip_ns`).
const SLOW_TRIP: f64 = 3.0;

/// 3 significant digits, no exponent for ordinary magnitudes.
pub fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else if x > 0.0 {
        // Three significant digits.
        let digits = (2.0 - x.log10().floor()) as usize;
        format!("{x:.digits$}")
    } else {
        format!("{x}")
    }
}

/// CSV of every record.
pub fn csv(groups: &[Group]) -> String {
    let mut s = String::from(
        "suite,workload,contender,ours,threads,ops,seconds,mops,ns_per_op,limit,limit_mops,ratio,\
         rounds,worst_mops,round_trip_ns\n",
    );
    for g in groups {
        for r in &g.records {
            let _ = writeln!(
                s,
                "{},{},\"{}\",{},{},{},{:.6},{:.4},{:.3},\"{}\",{},{},{},{:.4},{}",
                r.suite,
                r.workload,
                r.contender,
                r.ours,
                r.threads,
                r.best.ops,
                r.best.secs,
                r.mops(),
                r.ns_per_op(),
                g.limit,
                r.limit_mops.map_or(String::new(), |l| format!("{l:.4}")),
                r.ratio().map_or(String::new(), |x| format!("{x:.4}")),
                r.rounds,
                r.worst_mops,
                r.best
                    .round_trip_ns
                    .map_or(String::new(), |x| format!("{x:.1}")),
            );
        }
    }
    s
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => "null".into(),
    }
}

/// JSON: the machine, the settings and every record.
pub fn json(groups: &[Group], machine: &str, settings: &str) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"machine\": {},", json_str(machine));
    let _ = writeln!(s, "  \"settings\": {},", json_str(settings));
    s.push_str("  \"groups\": [\n");
    for (gi, g) in groups.iter().enumerate() {
        let _ = writeln!(
            s,
            "    {{\"suite\": {}, \"workload\": {}, \"about\": {}, \"limit\": {}, \"results\": [",
            json_str(g.suite),
            json_str(&g.workload),
            json_str(&g.about),
            json_str(&g.limit)
        );
        for (i, r) in g.records.iter().enumerate() {
            let _ = writeln!(
                s,
                "      {{\"contender\": {}, \"ours\": {}, \"threads\": {}, \"ops\": {}, \
                 \"seconds\": {}, \"mops\": {}, \"ns_per_op\": {}, \"limit_mops\": {}, \
                 \"ratio\": {}, \"rounds\": {}, \"worst_mops\": {}, \"round_trip_ns\": {}}}{}",
                json_str(&r.contender),
                r.ours,
                r.threads,
                r.best.ops,
                r.best.secs,
                json_num(Some(r.mops())),
                json_num(Some(r.ns_per_op())),
                json_num(r.limit_mops),
                json_num(r.ratio()),
                r.rounds,
                json_num(Some(r.worst_mops)),
                json_num(r.best.round_trip_ns),
                if i + 1 < g.records.len() { "," } else { "" }
            );
        }
        let _ = writeln!(s, "    ]}}{}", if gi + 1 < groups.len() { "," } else { "" });
    }
    s.push_str("  ]\n}\n");
    s
}
