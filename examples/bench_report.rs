//! Runs the benchmarks briefly and prints one table: workloads x
//! implementations, criterion's median time per event and its ratio to the
//! floor of the same workload; then the waiting publish next to the bounded
//! channels whose send waits (`benches/waiting.rs`), as a ratio to the best
//! of them; then each bar of the design document (`docs/design.md`,
//! "Performance") and of the waiting publish with the ratio measured in this
//! run.
//!
//! ```sh
//! cargo run --release --example bench_report              # run the benches, then report
//! cargo run --release --example bench_report -- --no-run  # report the last results only
//! cargo run --release --example bench_report -- --measurement-time 5
//! cargo run --release --example bench_report -- '^w_'    # the waiting groups only
//! cargo run --release --example bench_report -- --write docs/performance.md
//! ```
//!
//! With `--write FILE` it also writes the report into `FILE`, replacing
//! what lies between the lines `<!-- bench_report:begin -->` and
//! `<!-- bench_report:end -->` (`docs/performance.md` has them), and leaves
//! the rest of the file as it is.
//!
//! It runs `cargo bench --bench fanout --bench request --bench waiting` with
//! `--warm-up-time 1 --measurement-time 3` (other criterion arguments given
//! after the options above are passed on, such as a filter: rows it did not
//! run show the last results there are), then reads criterion's
//! `estimates.json` files under `$CARGO_TARGET_DIR/criterion` (or
//! `target/criterion`). All ratios come from one run, so they hold on a noisy
//! machine even where the absolute times swing.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{self, Command};
use std::time::{SystemTime, UNIX_EPOCH};

/// The implementations, in column order.
const COLUMNS: [&str; 6] = [
    "floor",
    "switchboard",
    "rwlock_port",
    "tokio_broadcast",
    "async_broadcast",
    "bus",
];

/// What one cell of the table shows.
#[derive(Clone, Copy)]
enum Cell {
    /// A criterion benchmark id within the row's group.
    Bench(&'static str),
    /// Not applicable, with the reason given in the notes.
    NotApplicable,
}

use Cell::{Bench as B, NotApplicable as NA};

struct Row {
    label: &'static str,
    group: &'static str,
    /// One cell per column of `COLUMNS`; the first is the ratio's denominator.
    cells: [Cell; 6],
}

const ROWS: &[Row] = &[
    Row {
        label: "a. publish, k=1",
        group: "a_publish_k1",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "a. publish, k=8",
        group: "a_publish_k8",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "a. publish, k=64",
        group: "a_publish_k64",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "b. typed dispatch, 64 types (TypeId)",
        group: "b_typed_dispatch_64",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "b. typed dispatch, 64 types (by name)",
        group: "b_typed_dispatch_64",
        cells: [B("floor"), B("switchboard_by_name"), NA, NA, NA, NA],
    },
    Row {
        label: "c. drop path, k=8 full",
        group: "c_drop_path_k8",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "c. floor with accounting",
        group: "c_drop_path_k8",
        cells: [B("floor"), NA, NA, NA, NA, NA],
    },
    Row {
        label: "d. 2 publishers -> 2 subscribers",
        group: "d_two_publishers",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            NA,
        ],
    },
    Row {
        label: "e. publish k=8, no churn",
        group: "e_publish_under_churn_k8",
        cells: [
            B("floor"),
            B("switchboard_idle"),
            B("rwlock_port_idle"),
            B("tokio_broadcast_idle"),
            B("async_broadcast_idle"),
            NA,
        ],
    },
    Row {
        label: "e. publish k=8, with churn",
        group: "e_publish_under_churn_k8",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            NA,
        ],
    },
    Row {
        label: "e. subscribe+unsubscribe pair*",
        group: "e_subscribe_unsubscribe",
        cells: [
            NA,
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            NA,
        ],
    },
    Row {
        label: "f. end to end, 1 -> 4 consumers",
        group: "f_end_to_end_1x4",
        cells: [
            B("floor"),
            B("switchboard"),
            B("rwlock_port"),
            B("tokio_broadcast"),
            B("async_broadcast"),
            B("bus"),
        ],
    },
    Row {
        label: "g. request, 3 responder threads",
        group: "request_round_trip_3_responders",
        cells: [
            B("crossbeam_request_reply"),
            B("switchboard_request"),
            NA,
            NA,
            NA,
            NA,
        ],
    },
    Row {
        label: "g. request_async, 3 responder threads",
        group: "request_round_trip_3_responders",
        cells: [
            B("crossbeam_request_reply"),
            B("switchboard_request_async"),
            NA,
            NA,
            NA,
            NA,
        ],
    },
    Row {
        label: "g. request_async, 3 responder tasks, one thread",
        group: "request_round_trip_3_responder_tasks",
        cells: [
            B("futures_request_reply"),
            B("switchboard_request_async"),
            NA,
            NA,
            NA,
            NA,
        ],
    },
    Row {
        label: "g. request_async, 3 responder tasks, tokio, 2 workers",
        group: "request_round_trip_3_responder_tasks_tokio",
        cells: [
            B("tokio_request_reply"),
            B("switchboard_request_async"),
            NA,
            NA,
            NA,
            NA,
        ],
    },
    Row {
        label: "h. 1 -> 1, blocking recv",
        group: "h_async_vs_sync_1x1",
        cells: [
            B("floor"),
            B("switchboard_recv"),
            NA,
            B("tokio_broadcast_blocking_recv"),
            B("async_broadcast_recv_blocking"),
            NA,
        ],
    },
    Row {
        label: "h. 1 -> 1, async (Stream / recv().await)",
        group: "h_async_vs_sync_1x1",
        cells: [
            B("floor"),
            B("switchboard_stream"),
            NA,
            B("tokio_broadcast_async_recv"),
            B("async_broadcast_stream"),
            NA,
        ],
    },
];

/// The implementations of the waiting-publish table, in column order.
const WAITING_COLUMNS: [&str; 5] = [
    "switchboard",
    "tokio_mpsc",
    "async_channel",
    "flume",
    "crossbeam",
];

struct WaitingRow {
    label: &'static str,
    group: &'static str,
    /// The peers (benchmark ids) the bar compares with: the ratio is
    /// switchboard's time to the best (lowest) of theirs.
    bar_peers: &'static [&'static str],
}

const WAITING_ROWS: &[WaitingRow] = &[
    WaitingRow {
        label: "w. waiting publish 1 -> 1, async (.await)",
        group: "w_waiting_1x1_async",
        bar_peers: &["tokio_mpsc", "async_channel", "flume"],
    },
    WaitingRow {
        label: "w. waiting publish 1 -> 4, async (.await)",
        group: "w_waiting_1x4_async",
        bar_peers: &["tokio_mpsc", "async_channel", "flume"],
    },
    WaitingRow {
        label: "w. waiting publish 1 -> 1, blocking (threads)",
        group: "w_blocking_1x1",
        bar_peers: &["crossbeam"],
    },
];

/// The waiting publish's bar (issue 18): at most this many times the best peer.
const WAITING_BAR: f64 = 1.5;

const WAITING_NOTES: &str = "\
Waiting publish (w): criterion medians per event, through buffers of 64, timed until
every consumer received it; the ratio is switchboard's time to the best peer the bar
names (async: tokio mpsc, async-channel, flume; blocking: crossbeam). Async rows: one
publisher task and one or four consumer tasks on a current-thread tokio runtime; with
four consumers the channels, which are not broadcast, are four channels sent to in
turn. Blocking row: a publisher thread and a consumer thread in `recv`.";

const NOTES: &str = "\
Times are criterion medians per published event (per round trip for g).
Ratios are to the row's first column: the floor (raw crossbeam `try_send` of an
`Arc` clone per subscriber), or for g the same exchange on bare crossbeam channels
(responder threads), `futures::channel::mpsc` (responder tasks on the requester's
thread, a `LocalPool`: no thread wake-ups, so the round trip's own work) or
`tokio::sync::mpsc` (responder and requester tasks on a 2-worker tokio runtime).
* e pairs: time per subscribe + unsubscribe while another thread publishes; no floor.
c, floor with accounting: the floor plus the bookkeeping any bus must do on a drop
(a per-subscriber and a bus counter, one callback call), shown in the floor column.
The broadcast crates store an event once and each receiver clones it on receipt,
so in a, b and c their per-subscriber cost is paid by consumers, outside the timed
part; f and h include it. In c they do not drop per subscriber: tokio and
async-broadcast overwrite their oldest slot, bus rejects the event for everyone.
In b they cannot filter: one channel per type in a HashMap<TypeId, _>.
n/a: bus is single-producer (d) and adds readers only through `&mut` (e); the port
has no async receive and bus no async API (h); g is switchboard's own feature.
d, e, f, h and g with threads run several threads on however many cores there are: on a small or
shared machine the same binary can settle into a fast or a slow mode for a whole
benchmark (on 2 cores, f has measured 215 and 570 ns per event from one build), so
repeat a run before reading much into one of those rows.";

/// The lines that enclose the part of a file `--write` replaces.
const BEGIN_MARKER: &str = "<!-- bench_report:begin -->";
const END_MARKER: &str = "<!-- bench_report:end -->";

struct Options {
    run: bool,
    /// `--write FILE`: the file whose marked part the report replaces.
    write: Option<PathBuf>,
    criterion_args: Vec<String>,
}

fn parse_options() -> Options {
    let mut run = true;
    let mut write = None;
    let mut criterion_args = Vec::new();
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-run" => run = false,
            "--write" => match args.next() {
                Some(path) => write = Some(PathBuf::from(path)),
                None => {
                    eprintln!("--write needs a file, e.g. --write docs/performance.md");
                    process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: bench_report [--no-run] [--write FILE] [criterion arguments...]\n\
                     default criterion arguments: --warm-up-time 1 --measurement-time 3\n\
                     --write FILE replaces the part of FILE between {BEGIN_MARKER} and \
                     {END_MARKER} with the report"
                );
                process::exit(0);
            }
            _ => criterion_args.push(arg),
        }
    }
    let defaults = [("--warm-up-time", "1"), ("--measurement-time", "3")];
    for (flag, value) in defaults {
        if !criterion_args.iter().any(|a| a == flag) {
            criterion_args.extend([flag.to_owned(), value.to_owned()]);
        }
    }
    Options {
        run,
        write,
        criterion_args,
    }
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

fn bench_command(criterion_args: &[String]) -> Vec<String> {
    let mut command: Vec<String> = [
        "cargo", "bench", "--bench", "fanout", "--bench", "request", "--bench", "waiting", "--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    command.extend(criterion_args.iter().cloned());
    command
}

fn run_benches(command: &[String]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("running: {}", command.join(" "));
    let status = Command::new(cargo)
        .args(&command[1..])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Criterion's output goes to stderr: stdout is the table alone.
        .stdout(std::io::stderr())
        .status()
        .unwrap_or_else(|e| {
            eprintln!("cannot run cargo: {e}");
            process::exit(2)
        });
    if !status.success() {
        eprintln!("the benchmarks failed ({status})");
        process::exit(2);
    }
}

/// A measured median, in nanoseconds, and when it was written.
#[derive(Clone, Copy)]
struct Median {
    ns: f64,
    written: SystemTime,
}

fn median(criterion: &Path, group: &str, id: &str) -> Option<Median> {
    let path = criterion
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = fs::read_to_string(&path).ok()?;
    let written = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    // {"mean":{...},"median":{"confidence_interval":{...},"point_estimate":N,...},...}
    let after = &text[text.find("\"median\"")?..];
    let value = &after[after.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    let ns = value[..end].trim().parse().ok()?;
    Some(Median { ns, written })
}

fn format_time(ns: f64) -> String {
    if ns >= 1_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else if ns >= 1_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else if ns >= 100.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{ns:.1} ns")
    }
}

/// `YYYY-MM-DD HH:MM UTC` without a date crate (civil-from-days).
fn format_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "rustc ?".to_owned(), |s| s.trim().to_owned());
    format!("{cpu}, {cores} cores, {}, {rustc}", env::consts::OS)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

struct Bar {
    text: &'static str,
    measured: Option<f64>,
    limit: f64,
    /// `true`: measured must be at most `limit`; `false`: at least.
    at_most: bool,
    unit: &'static str,
}

/// The bar's wording for a waiting row, e.g. "(w) waiting publish 1 -> 1,
/// async / best of tokio_mpsc, async_channel, flume".
fn waiting_bar_text(row: &WaitingRow) -> &'static str {
    match row.group {
        "w_waiting_1x1_async" => {
            "(w) waiting publish 1 -> 1, async / best of tokio mpsc, async-channel, flume"
        }
        "w_waiting_1x4_async" => {
            "(w) waiting publish 1 -> 4, async / best of tokio mpsc, async-channel, flume"
        }
        "w_blocking_1x1" => "(w) waiting publish 1 -> 1, blocking / crossbeam blocking send",
        _ => row.label,
    }
}

/// Writes the waiting-publish table into `out`: each implementation's
/// median, with its ratio to the best of the row's bar peers, and returns
/// switchboard's ratio per row (`None` where something was not measured).
fn waiting_table(
    out: &mut String,
    written: &mut Vec<SystemTime>,
    get: &impl Fn(&str, &str) -> Option<Median>,
) -> Vec<Option<f64>> {
    let header: Vec<&str> = std::iter::once("waiting publish")
        .chain(WAITING_COLUMNS)
        .chain(std::iter::once("switchboard / best peer"))
        .collect();
    let _ = writeln!(out, "\n| {} |", header.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(header.len() - 1));
    let mut ratios = Vec::new();
    for row in WAITING_ROWS {
        let best = row
            .bar_peers
            .iter()
            .filter_map(|id| get(row.group, id).map(|m| (*id, m.ns)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let mut cells = vec![row.label.to_owned()];
        for id in WAITING_COLUMNS {
            let applies = id == "switchboard" || row.bar_peers.contains(&id);
            // flume also has a blocking send: shown, outside the bar.
            let shown = applies || (id == "flume" && row.group == "w_blocking_1x1");
            let text = match (shown, get(row.group, id)) {
                (false, _) => "n/a".to_owned(),
                (true, None) => "—".to_owned(),
                (true, Some(m)) => {
                    written.push(m.written);
                    match best {
                        Some((_, b)) if b > 0.0 => {
                            format!("{} ({:.2}x)", format_time(m.ns), m.ns / b)
                        }
                        _ => format_time(m.ns),
                    }
                }
            };
            cells.push(text);
        }
        let ratio = match (get(row.group, "switchboard"), best) {
            (Some(ours), Some((_, b))) if b > 0.0 => Some(ours.ns / b),
            _ => None,
        };
        cells.push(match (ratio, best) {
            (Some(r), Some((peer, _))) => format!("{r:.2}x (best: {peer})"),
            _ => "—".to_owned(),
        });
        ratios.push(ratio);
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    ratios
}

fn main() {
    let options = parse_options();
    let command = bench_command(&options.criterion_args);
    let load_before = load_average();
    if options.run {
        run_benches(&command);
    }
    let criterion = target_dir().join("criterion");
    let get = |group: &str, id: &str| median(&criterion, group, id);

    let mut out = String::new();
    let mut written: Vec<SystemTime> = Vec::new();
    let header: Vec<&str> = std::iter::once("workload").chain(COLUMNS).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in ROWS {
        let base = match row.cells[0] {
            B(id) => get(row.group, id),
            NA => None,
        };
        let mut cells = vec![row.label.to_owned()];
        for (i, cell) in row.cells.iter().enumerate() {
            // The floor-with-accounting row shows that bench in the floor column.
            let cell = if row.label.starts_with("c. floor with") && i == 0 {
                B("floor_with_accounting")
            } else {
                *cell
            };
            let text = match cell {
                NA => "n/a".to_owned(),
                B(id) => match get(row.group, id) {
                    None => "—".to_owned(),
                    Some(m) => {
                        written.push(m.written);
                        match base {
                            Some(b) if b.ns > 0.0 => {
                                format!("{} ({:.2}x)", format_time(m.ns), m.ns / b.ns)
                            }
                            _ => format_time(m.ns),
                        }
                    }
                },
            };
            cells.push(text);
        }
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }

    let waiting_ratios = waiting_table(&mut out, &mut written, &get);

    let ratio = |(g1, i1): (&str, &str), (g2, i2): (&str, &str)| -> Option<f64> {
        Some(get(g1, i1)?.ns / get(g2, i2)?.ns)
    };
    let mut bars = vec![
        Bar {
            text: "(a) k=8 publish / floor",
            measured: ratio(("a_publish_k8", "switchboard"), ("a_publish_k8", "floor")),
            limit: 1.2,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(a) k=1 publish / floor",
            measured: ratio(("a_publish_k1", "switchboard"), ("a_publish_k1", "floor")),
            limit: 1.5,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(a) k=1 publish / rwlock_port",
            measured: ratio(
                ("a_publish_k1", "switchboard"),
                ("a_publish_k1", "rwlock_port"),
            ),
            limit: 1.0,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(b) typed dispatch / switchboard's own k=1 publish",
            measured: ratio(
                ("b_typed_dispatch_64", "switchboard"),
                ("a_publish_k1", "switchboard"),
            ),
            limit: 2.0,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(b) rwlock_port / switchboard, typed dispatch (speed-up)",
            measured: ratio(
                ("b_typed_dispatch_64", "rwlock_port"),
                ("b_typed_dispatch_64", "switchboard"),
            ),
            limit: 10.0,
            at_most: false,
            unit: "x",
        },
        Bar {
            text: "(c) drop path / floor's failing try_send loop",
            measured: ratio(
                ("c_drop_path_k8", "switchboard"),
                ("c_drop_path_k8", "floor"),
            ),
            limit: 1.5,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(d) 2 publishers / floor",
            measured: ratio(
                ("d_two_publishers", "switchboard"),
                ("d_two_publishers", "floor"),
            ),
            limit: 1.3,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(d) 2 publishers / rwlock_port",
            measured: ratio(
                ("d_two_publishers", "switchboard"),
                ("d_two_publishers", "rwlock_port"),
            ),
            limit: 1.0,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(e) publish with churn / without",
            measured: ratio(
                ("e_publish_under_churn_k8", "switchboard"),
                ("e_publish_under_churn_k8", "switchboard_idle"),
            ),
            limit: 1.25,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(e) subscribe+unsubscribe pairs per second, while publishing",
            measured: get("e_subscribe_unsubscribe", "switchboard").map(|m| 1e9 / m.ns),
            limit: 1_000_000.0,
            at_most: false,
            unit: "/s",
        },
        Bar {
            text: "(e) subscribe+unsubscribe pairs: rwlock_port time / switchboard time",
            measured: ratio(
                ("e_subscribe_unsubscribe", "rwlock_port"),
                ("e_subscribe_unsubscribe", "switchboard"),
            ),
            limit: 2.0,
            at_most: false,
            unit: "x",
        },
        Bar {
            text: "(g) request round trip, 3 responder threads",
            measured: get("request_round_trip_3_responders", "switchboard_request")
                .map(|m| m.ns / 1_000.0),
            limit: 2.5,
            at_most: true,
            unit: " µs",
        },
        Bar {
            text: "(g) request round trip, 3 responder tasks on one thread",
            measured: get(
                "request_round_trip_3_responder_tasks",
                "switchboard_request_async",
            )
            .map(|m| m.ns / 1_000.0),
            limit: 2.5,
            at_most: true,
            unit: " µs",
        },
        Bar {
            text: "(g) request_async, 3 responder tasks, tokio (2 workers)",
            measured: get(
                "request_round_trip_3_responder_tasks_tokio",
                "switchboard_request_async",
            )
            .map(|m| m.ns / 1_000.0),
            limit: 2.5,
            at_most: true,
            unit: " µs",
        },
        Bar {
            text: "(g) request_async on tokio / the same exchange on tokio channels",
            measured: ratio(
                (
                    "request_round_trip_3_responder_tasks_tokio",
                    "switchboard_request_async",
                ),
                (
                    "request_round_trip_3_responder_tasks_tokio",
                    "tokio_request_reply",
                ),
            ),
            limit: 2.0,
            at_most: true,
            unit: "x",
        },
        Bar {
            text: "(h) async consumer (Stream) / tokio broadcast recv().await",
            measured: ratio(
                ("h_async_vs_sync_1x1", "switchboard_stream"),
                ("h_async_vs_sync_1x1", "tokio_broadcast_async_recv"),
            ),
            limit: 1.0,
            at_most: true,
            unit: "x",
        },
    ];
    bars.extend(
        WAITING_ROWS
            .iter()
            .zip(waiting_ratios)
            .map(|(row, measured)| Bar {
                text: waiting_bar_text(row),
                measured,
                limit: WAITING_BAR,
                at_most: true,
                unit: "x",
            }),
    );
    let _ = writeln!(out, "\n| bar | target | measured | |\n|---|---:|---:|---|");
    for bar in &bars {
        let fmt = |v: f64| {
            if bar.unit == "/s" {
                format!("{:.2} M/s", v / 1e6)
            } else {
                format!("{v:.2}{}", bar.unit)
            }
        };
        let target = format!("{} {}", if bar.at_most { "≤" } else { "≥" }, fmt(bar.limit));
        let (measured, verdict) = match bar.measured {
            None => ("—".to_owned(), "not measured"),
            Some(v) => {
                let ok = if bar.at_most {
                    v <= bar.limit
                } else {
                    v >= bar.limit
                };
                (fmt(v), if ok { "met" } else { "MISSED" })
            }
        };
        let _ = writeln!(out, "| {} | {target} | {measured} | {verdict} |", bar.text);
    }

    let f_delivered = get("f_end_to_end_1x4", "switchboard").map(|m| 4e9 / m.ns);
    if let Some(rate) = f_delivered {
        let _ = writeln!(
            out,
            "\n(f) switchboard end to end: {:.1} M delivered events/s (1 publisher, 4 consumers).",
            rate / 1e6
        );
    }
    let _ = writeln!(out, "\n{NOTES}\n\n{WAITING_NOTES}");

    let first = written.iter().min().copied();
    let last = written.iter().max().copied();
    let mut report = String::new();
    if let (Some(first), Some(last)) = (first, last) {
        let _ = writeln!(
            report,
            "Measured {} to {} on {}.",
            format_utc(first),
            format_utc(last),
            machine()
        );
    } else {
        let _ = writeln!(report, "No results found under {}.", criterion.display());
    }
    let _ = writeln!(
        report,
        "Command: `cargo run --release --example bench_report` ({}); load average \
         before: {load_before}, after: {}.\n",
        command.join(" "),
        load_average()
    );
    report.push_str(&out);
    println!("## switchboard benchmarks\n");
    print!("{report}");
    if let Some(path) = &options.write {
        if let Err(e) = write_report(path, &report) {
            eprintln!("cannot write the report into {}: {e}", path.display());
            process::exit(2);
        }
        eprintln!("wrote the report into {}", path.display());
    }
}

/// Replaces the lines between [`BEGIN_MARKER`] and [`END_MARKER`] in the
/// file at `path` with `report`, keeping the markers and everything else.
fn write_report(path: &Path, report: &str) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
    let updated = replace_marked(&text, report)?;
    fs::write(path, updated).map_err(|e| e.to_string())
}

/// `text` with what lies between the marker lines replaced by `report`.
fn replace_marked(text: &str, report: &str) -> Result<String, String> {
    let begin = text
        .find(BEGIN_MARKER)
        .ok_or_else(|| format!("no line `{BEGIN_MARKER}`"))?;
    let body_start = begin + BEGIN_MARKER.len();
    let end = text[body_start..]
        .find(END_MARKER)
        .map(|i| body_start + i)
        .ok_or_else(|| format!("no line `{END_MARKER}` after `{BEGIN_MARKER}`"))?;
    Ok(format!(
        "{}\n{}\n{}",
        &text[..body_start],
        report.trim_end(),
        &text[end..]
    ))
}
