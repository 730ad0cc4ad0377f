//! Running a long external tool (sbuild, mmdebstrap) under supervision: its output streamed
//! to a log file and, batched, to a progress queue; heartbeats while it is silent; and a
//! timeout or a cancel that ends its whole process tree.
//!
//! The tool runs in a process group of its own. Ending it sends `SIGTERM` to the group and
//! to every descendant found under `/proc` (tools that start new sessions or user
//! namespaces leave the group but stay descendants), waits a grace period, then sends
//! `SIGKILL` to whatever is left, until nothing of the tree remains. The same happens when
//! the supervising future is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::queue::{
    Done, ProgressMessage, ProgressQueues, QueueName, LOG_BATCH_LINES, LOG_BATCH_MS,
};

/// Lines of the end of the log kept for a failure's reason.
pub const TAIL_LINES: usize = 300;

/// How long the output of a tool that exited may still come (from what it left running)
/// before the run ends and that is ended too.
pub const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Longest line passed on whole; a longer one is passed on in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// How a supervised run is reported and bounded.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// The phase the run belongs to, for heartbeats.
    pub phase: String,
    /// Ended when it runs longer.
    pub timeout: Duration,
    /// A heartbeat goes out after this long without output.
    pub heartbeat: Duration,
    /// Between `SIGTERM` and `SIGKILL`.
    pub grace: Duration,
    /// Where every output line also goes, with when it came (for a caller that follows the
    /// tool's progress, like the test runner counting tests).
    pub lines: Option<tokio::sync::mpsc::UnboundedSender<(Instant, String)>>,
}

impl Default for Supervision {
    fn default() -> Supervision {
        Supervision {
            phase: "build".to_owned(),
            timeout: Duration::from_secs(3 * 3600),
            heartbeat: Duration::from_secs(30),
            grace: Duration::from_secs(10),
            lines: None,
        }
    }
}

/// How a supervised run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The tool exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// It ran past the timeout and was ended.
    TimedOut,
    /// It was cancelled and ended.
    Cancelled,
}

/// The end of a supervised run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// The last lines it printed.
    pub tail: Vec<String>,
}

impl Outcome {
    /// Whether the tool exited with 0.
    pub fn succeeded(&self) -> bool {
        self.ending == Ending::Exited(Some(0))
    }

    /// The last `count` non-blank lines the tool printed, one per line.
    pub fn last_lines(&self, count: usize) -> String {
        let lines: Vec<&str> = self
            .tail
            .iter()
            .map(String::as_str)
            .filter(|l| !l.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }
}

impl Ending {
    /// How it ended, for people (`exit status 2`, `timed out`).
    pub fn describe(&self) -> String {
        match self {
            Ending::Exited(Some(code)) => format!("exit status {code}"),
            Ending::Exited(None) => "killed by a signal".to_owned(),
            Ending::TimedOut => "timed out".to_owned(),
            Ending::Cancelled => "cancelled".to_owned(),
        }
    }
}

/// Where the output goes.
pub struct Reporter<'a> {
    /// The progress queues.
    pub queues: &'a dyn ProgressQueues,
    /// The queue of this work.
    pub queue: &'a QueueName,
}

impl Reporter<'_> {
    /// Publishes `message`.
    ///
    /// # Errors
    /// What the queue reports.
    pub async fn send(&self, message: &ProgressMessage) -> Result<()> {
        self.queues
            .publish(self.queue, message.to_json())
            .await
            .map(drop)
    }

    /// Sends the final message `done` and returns it.
    ///
    /// # Errors
    /// What the queue reports.
    pub async fn finish(&self, done: Done) -> Result<Done> {
        self.send(&ProgressMessage::Done(done.clone())).await?;
        Ok(done)
    }

    /// Announces that phase `name` began, doing what `message` says.
    ///
    /// # Errors
    /// What the queue reports.
    pub async fn phase(&self, name: &str, message: impl Into<String>) -> Result<()> {
        self.send(&ProgressMessage::Phase {
            phase: name.to_owned(),
            message: message.into(),
        })
        .await
    }
}

/// Runs `command` to its end (or the timeout, or `cancel`), appending its output (stdout and
/// stderr, line by line) to `log` and sending it to `reporter` in batches.
///
/// # Errors
/// `Internal` when the tool cannot be started (`NotFound` when it does not exist) or the
/// log cannot be written; a failing tool is an [`Outcome`], not an error.
pub async fn run(
    mut command: Command,
    log: &Path,
    reporter: &Reporter<'_>,
    supervision: &Supervision,
    cancel: &CancellationToken,
) -> Result<Outcome> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let program = format!("{:?}", command.as_std().get_program());
    let mut child = command
        .spawn()
        .map_err(|e| Error::from(e).with_resource(program.clone()))?;
    let pid = child
        .id()
        .ok_or_else(|| Error::internal("the started tool has no pid"))?;
    let guard = TreeGuard {
        root: pid,
        grace: supervision.grace,
        armed: true,
    };
    let (lines_tx, mut lines) = tokio::sync::mpsc::channel::<String>(1024);
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = lines_tx.clone();
        tokio::spawn(async move {
            // Lines are read at most MAX_LINE bytes at a time (a longer one comes in
            // pieces), and bytes that are not UTF-8 are replaced, so no output can make a
            // line unbounded or end the reading early.
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut buf)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let end = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let end = end.strip_suffix(b"\r").unwrap_or(end);
                if tx
                    .send(String::from_utf8_lossy(end).into_owned())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    drop(lines_tx);

    let mut file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await
        .map_err(|e| Error::from(e).with_resource(log.display().to_string()))?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + supervision.timeout;
    let mut batch: Vec<String> = Vec::new();
    let mut batch_started = Instant::now();
    let mut last_output = Instant::now();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut ending = None;
    let mut output_open = true;
    // The tool's exit code once it exited, and until when its output may still drain: a
    // process it left behind holding the output open must not keep the run going.
    let mut exited: Option<(Option<i32>, tokio::time::Instant)> = None;
    let tick = Duration::from_millis(LOG_BATCH_MS);
    loop {
        tokio::select! {
            line = lines.recv(), if output_open => match line {
                Some(line) => {
                    file.write_all(line.as_bytes()).await?;
                    file.write_all(b"\n").await?;
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line.clone());
                    if let Some(watcher) = &supervision.lines {
                        let _ = watcher.send((Instant::now(), line.clone()));
                    }
                    if batch.is_empty() {
                        batch_started = Instant::now();
                    }
                    batch.push(line);
                    last_output = Instant::now();
                    if batch.len() >= LOG_BATCH_LINES {
                        flush(reporter, &mut batch).await?;
                    }
                }
                None => {
                    output_open = false;
                    if let Some((code, _)) = exited {
                        ending = Some(Ending::Exited(code));
                    }
                }
            },
            status = child.wait(), if exited.is_none() => {
                let code = status.map_err(Error::from)?.code();
                exited = Some((code, tokio::time::Instant::now() + OUTPUT_DRAIN));
                if !output_open {
                    ending = Some(Ending::Exited(code));
                }
            }
            () = async {
                match exited {
                    Some((_, until)) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            }, if output_open => {
                if let Some((code, _)) = exited {
                    ending = Some(Ending::Exited(code));
                }
            }
            () = tokio::time::sleep(tick) => {
                if !batch.is_empty() && batch_started.elapsed() >= tick {
                    flush(reporter, &mut batch).await?;
                }
                if last_output.elapsed() >= supervision.heartbeat {
                    last_output = Instant::now();
                    reporter
                        .send(&ProgressMessage::Heartbeat {
                            heartbeat: started.elapsed().as_secs(),
                            phase: supervision.phase.clone(),
                        })
                        .await?;
                }
            }
            () = tokio::time::sleep_until(deadline) => ending = Some(Ending::TimedOut),
            () = cancel.cancelled() => ending = Some(Ending::Cancelled),
        }
        if let Some(ending) = ending.take() {
            flush(reporter, &mut batch).await?;
            file.flush().await?;
            // Whatever is left of the tree ends too: all of it on a timeout or a cancel,
            // what the tool left running when it exited by itself.
            end_tree(pid, supervision.grace).await;
            if exited.is_none() {
                let _ = child.wait().await;
            }
            drop(guard.disarm());
            return Ok(Outcome {
                ending,
                tail: tail.into_iter().collect(),
            });
        }
    }
}

async fn flush(reporter: &Reporter<'_>, batch: &mut Vec<String>) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let log = std::mem::take(batch);
    reporter.send(&ProgressMessage::Log { log }).await
}

/// Ends the process tree of `root` when dropped while armed (the supervising future was
/// dropped: a cancelled request, a dying task).
struct TreeGuard {
    root: u32,
    grace: Duration,
    armed: bool,
}

impl TreeGuard {
    fn disarm(mut self) -> Self {
        self.armed = false;
        self
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        if self.armed {
            let (root, grace) = (self.root, self.grace);
            // No runtime may be left to wait on: do it on a thread of its own.
            std::thread::spawn(move || end_tree_blocking(root, grace));
        }
    }
}

/// Ends `root`'s process group and every descendant: `SIGTERM`, `grace`, then `SIGKILL`
/// until none is left.
pub async fn end_tree(root: u32, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || end_tree_blocking(root, grace)).await;
}

fn end_tree_blocking(root: u32, grace: Duration) {
    // Every process ever seen in the tree stays a target: one that dies leaves its children
    // to init, outside the tree, and they must not escape. Each is known by its id *and*
    // its start time: an id the system gave to another process since is not a target.
    let root_start = start_time(root);
    let mut seen: HashMap<u32, u64> = HashMap::new();
    let live = |seen: &mut HashMap<u32, u64>| {
        for pid in descendants(root).into_iter().chain(group_members(root)) {
            if let Some(start) = start_time(pid) {
                seen.entry(pid).or_insert(start);
            }
        }
        seen.remove(&std::process::id());
        seen.retain(|pid, start| is_alive(*pid) && start_time(*pid) == Some(*start));
        seen.clone()
    };
    // The group is signalled as a whole only while its leader is the tool itself.
    let group = || root_start.is_some() && start_time(root) == root_start;
    signal_all(group().then_some(root), &live(&mut seen), libc::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if live(&mut seen).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..100 {
        let left = live(&mut seen);
        if left.is_empty() {
            return;
        }
        signal_all(group().then_some(root), &left, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.get(stat.rfind(')')? + 2..)?;
            rest.chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// When process `pid` started (clock ticks after boot: field 22 of `/proc/<pid>/stat`),
/// which tells it apart from a later process given the same id.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3.
    stat.get(stat.rfind(')')? + 2..)?
        .split(' ')
        .nth(22 - 3)?
        .parse()
        .ok()
}

/// Signals `group` (when it is still the tool's) and each process of `pids` whose start
/// time is still the one seen (so no process that took a dead one's id is signalled).
fn signal_all(group: Option<u32>, pids: &HashMap<u32, u64>, signal: i32) {
    if let Some(group) = group.and_then(|g| i32::try_from(g).ok()) {
        // SAFETY: killpg only sends a signal; a stale group id fails with ESRCH.
        unsafe {
            libc::killpg(group, signal);
        }
    }
    for (pid, start) in pids {
        if start_time(*pid) != Some(*start) {
            continue;
        }
        if let Ok(pid) = i32::try_from(*pid) {
            // SAFETY: as above, for one process.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

/// `(pid, ppid, pgrp, state)` of every process, from `/proc/<pid>/stat`.
fn processes() -> Vec<(u32, u32, u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The command name is in parentheses and may hold spaces: split after the last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?.chars().next()?;
            let ppid = fields.next()?.parse().ok()?;
            let pgrp = fields.next()?.parse().ok()?;
            Some((pid, ppid, pgrp, state))
        })
        .collect()
}

/// Live descendants of `root` (zombies excepted), `root` included.
fn descendants(root: u32) -> HashSet<u32> {
    let all = processes();
    let mut found: HashSet<u32> = HashSet::new();
    if all
        .iter()
        .any(|(pid, _, _, state)| *pid == root && *state != 'Z')
    {
        found.insert(root);
    }
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid, _, state) in &all {
            if *ppid == parent && *state != 'Z' && found.insert(*pid) {
                frontier.push(*pid);
            }
        }
    }
    found
}

/// Live members of process group `group`.
fn group_members(group: u32) -> HashSet<u32> {
    processes()
        .into_iter()
        .filter(|(_, _, pgrp, state)| *pgrp == group && *state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::memory::MemoryQueues;
    use futures::StreamExt;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(script);
        command
    }

    async fn messages(queues: &MemoryQueues, queue: &QueueName) -> Vec<ProgressMessage> {
        queues
            .publish(
                queue,
                ProgressMessage::completed(Default::default()).to_json(),
            )
            .await
            .unwrap();
        queues
            .subscribe(queue, None)
            .await
            .unwrap()
            .map(|m| ProgressMessage::from_json(&m.unwrap().body).unwrap())
            .collect()
            .await
    }

    fn alive(pid: u32) -> bool {
        is_alive(pid)
    }

    /// A process is known by its id and its start time: a record of an id whose start
    /// time is another (a process that took a dead one's id) is never signalled.
    #[test]
    fn a_reused_process_id_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = start_time(pid).expect("a start time");
        assert_eq!(start_time(pid), Some(start), "stable");
        // As if `pid` had been seen as another process, which started earlier.
        let stale: HashMap<u32, u64> = [(pid, start - 1)].into();
        signal_all(None, &stale, libc::SIGKILL);
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(pid), "a process not the one seen was signalled");
        // The one seen is.
        let seen: HashMap<u32, u64> = [(pid, start)].into();
        signal_all(None, &seen, libc::SIGKILL);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert_eq!(start_time(pid), None, "reaped");
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_the_queue_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("build.log");
        let queues = MemoryQueues::default();
        let queue = QueueName::new("out").unwrap();
        let reporter = Reporter {
            queues: &queues,
            queue: &queue,
        };
        let outcome = run(
            sh("for i in $(seq 1 450); do echo line $i; done; echo oops >&2; exit 3"),
            &log,
            &reporter,
            &Supervision::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.ending, Ending::Exited(Some(3)));
        assert_eq!(outcome.tail.len(), TAIL_LINES);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text.lines().count(), 451);
        let logged: Vec<String> = messages(&queues, &queue)
            .await
            .into_iter()
            .filter_map(|m| match m {
                ProgressMessage::Log { log } => Some(log),
                _ => None,
            })
            .flatten()
            .filter(|l| l.starts_with("line "))
            .collect();
        let expected: Vec<String> = (1..=450).map(|i| format!("line {i}")).collect();
        assert_eq!(logged, expected);
    }

    #[tokio::test]
    async fn long_lines_come_in_pieces_and_bad_bytes_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let queues = MemoryQueues::default();
        let queue = QueueName::new("long").unwrap();
        let reporter = Reporter {
            queues: &queues,
            queue: &queue,
        };
        let outcome = run(
            sh("head -c 150000 /dev/zero | tr '\\0' a; echo; printf 'bad \\377 byte\\n'; echo after"),
            &dir.path().join("log"),
            &reporter,
            &Supervision::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(outcome.succeeded());
        let lines: Vec<String> = messages(&queues, &queue)
            .await
            .into_iter()
            .filter_map(|m| match m {
                ProgressMessage::Log { log } => Some(log),
                _ => None,
            })
            .flatten()
            .collect();
        let lengths: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(lengths[..3], [MAX_LINE, MAX_LINE, 150_000 - 2 * MAX_LINE]);
        assert_eq!(lines[3], "bad \u{fffd} byte");
        assert_eq!(
            lines[4], "after",
            "reading goes on after bytes that are not UTF-8"
        );
    }

    #[tokio::test]
    async fn a_tool_that_exits_ends_the_run_even_if_a_child_keeps_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let queues = MemoryQueues::default();
        let queue = QueueName::new("left").unwrap();
        let reporter = Reporter {
            queues: &queues,
            queue: &queue,
        };
        let pid_file = dir.path().join("pid");
        let started = Instant::now();
        let outcome = run(
            sh(&format!(
                "sleep 60 & echo $! > {}; echo started; exit 4",
                pid_file.display()
            )),
            &dir.path().join("log"),
            &reporter,
            &Supervision::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.ending, Ending::Exited(Some(4)));
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(outcome.tail, ["started"]);
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        assert!(
            stat.map_or(true, |s| s.contains(") Z ")),
            "the child it left is ended"
        );
    }

    #[tokio::test]
    async fn silence_sends_heartbeats() {
        let dir = tempfile::tempdir().unwrap();
        let queues = MemoryQueues::default();
        let queue = QueueName::new("quiet").unwrap();
        let reporter = Reporter {
            queues: &queues,
            queue: &queue,
        };
        let supervision = Supervision {
            heartbeat: Duration::from_millis(300),
            ..Supervision::default()
        };
        let outcome = run(
            sh("sleep 1.5"),
            &dir.path().join("log"),
            &reporter,
            &supervision,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(outcome.succeeded());
        let beats = messages(&queues, &queue)
            .await
            .into_iter()
            .filter(|m| matches!(m, ProgressMessage::Heartbeat { .. }))
            .count();
        assert!(beats >= 2, "{beats} heartbeats");
    }

    /// A tree of processes, one in a new session (outside the group): a timeout and a cancel
    /// end all of it.
    #[tokio::test]
    async fn timeout_and_cancel_end_the_whole_tree() {
        for cancelled in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let pids = dir.path().join("pids");
            let queues = MemoryQueues::default();
            let queue = QueueName::new("tree").unwrap();
            let reporter = Reporter {
                queues: &queues,
                queue: &queue,
            };
            let script = format!(
                "sleep 300 & echo $! >> {p}; setsid sh -c 'echo $$ >> {p}; sleep 300' & \
                 (trap '' TERM; sleep 300) & echo $! >> {p}; echo started; wait",
                p = pids.display()
            );
            let cancel = CancellationToken::new();
            let supervision = Supervision {
                timeout: if cancelled {
                    Duration::from_secs(60)
                } else {
                    Duration::from_millis(800)
                },
                grace: Duration::from_millis(300),
                ..Supervision::default()
            };
            if cancelled {
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                    cancel.cancel();
                });
            }
            let started = Instant::now();
            let outcome = run(
                sh(&script),
                &dir.path().join("log"),
                &reporter,
                &supervision,
                &cancel,
            )
            .await
            .unwrap();
            assert!(started.elapsed() < Duration::from_secs(30));
            let expected = if cancelled {
                Ending::Cancelled
            } else {
                Ending::TimedOut
            };
            assert_eq!(outcome.ending, expected);
            let listed = std::fs::read_to_string(&pids).unwrap();
            let listed: Vec<u32> = listed
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            assert_eq!(listed.len(), 3, "{listed:?}");
            for pid in listed {
                assert!(!alive(pid), "process {pid} survived");
            }
        }
    }
}
