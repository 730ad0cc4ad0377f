//! DEP-8 (autopkgtest) files: the tests a source declares (`debian/tests/control`), the
//! results autopkgtest writes (its summary file), and the JUnit report made of them.

use std::fmt::Write as _;

use crate::error::{Error, Result};

/// A test declared in `debian/tests/control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTest {
    /// Its name: one of `Tests:`, or `command<N>` for the N-th `Test-Command:` stanza (as
    /// autopkgtest names them).
    pub name: String,
    /// Its `Restrictions:`.
    pub restrictions: Vec<String>,
}

/// The tests of a `debian/tests/control`, in order.
///
/// # Errors
/// `InvalidInput` for a stanza with neither `Tests:` nor `Test-Command:`, or both.
pub fn declared_tests(control: &str) -> Result<Vec<DeclaredTest>> {
    let mut tests = Vec::new();
    let mut commands = 0;
    for stanza in stanzas(control) {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let restrictions: Vec<String> = field("Restrictions")
            .map(|r| {
                r.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        match (field("Tests"), field("Test-Command")) {
            (Some(names), None) => {
                for name in names
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                {
                    tests.push(DeclaredTest {
                        name: name.to_owned(),
                        restrictions: restrictions.clone(),
                    });
                }
            }
            (None, Some(_)) => {
                commands += 1;
                tests.push(DeclaredTest {
                    name: format!("command{commands}"),
                    restrictions,
                });
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "debian/tests/control: a stanza has both Tests: and Test-Command:",
                ))
            }
            (None, None) => {
                return Err(Error::invalid(
                    "debian/tests/control: a stanza has neither Tests: nor Test-Command:",
                ))
            }
        }
    }
    Ok(tests)
}

/// The stanzas of a deb822 file: `(field, value)` pairs, continuation lines joined with
/// `\n`, `#` comment lines left out.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut all = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                all.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        all.push(current);
    }
    all
}

/// How one test ended, as autopkgtest's summary says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `PASS`.
    Pass,
    /// `FAIL`.
    Fail,
    /// `SKIP`: a restriction the test bed cannot meet, or a skippable test's exit 77.
    Skip,
    /// `FLAKY`: a failure of a test marked flaky; reported, not failing the run.
    Flaky,
}

/// One line of autopkgtest's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// How it ended.
    pub verdict: Verdict,
    /// What autopkgtest says beside the verdict (`non-zero exit status 1`).
    pub detail: String,
}

/// The results of autopkgtest's summary file (`name VERDICT [detail]` per line), one per
/// test (autopkgtest 5.28 writes a test skipped for a restriction twice); lines it cannot
/// read (a `*` line for the whole run, say) are left out.
pub fn parse_summary(text: &str) -> Vec<TestResult> {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let verdict = match words.next()? {
                "PASS" => Verdict::Pass,
                "FAIL" => Verdict::Fail,
                "SKIP" => Verdict::Skip,
                "FLAKY" => Verdict::Flaky,
                _ => return None,
            };
            Some(TestResult {
                name: name.to_owned(),
                verdict,
                detail: words.collect::<Vec<_>>().join(" "),
            })
        })
        .filter(|result| seen.insert(result.name.clone()))
        .collect()
}

/// One test case of a JUnit report.
#[derive(Debug, Clone, PartialEq)]
pub struct JunitCase {
    /// The test's result.
    pub result: TestResult,
    /// Seconds it took.
    pub seconds: f64,
    /// What it printed on stdout and stderr.
    pub stdout: String,
    /// .
    pub stderr: String,
}

/// A JUnit XML report of one autopkgtest run: a `testsuite` named `suite` with one
/// `testcase` per test (`failure` for FAIL, `skipped` for SKIP; a FLAKY failure is a pass
/// with its failure in `system-err`).
pub fn junit(suite: &str, cases: &[JunitCase]) -> String {
    let failures = cases
        .iter()
        .filter(|c| c.result.verdict == Verdict::Fail)
        .count();
    let skipped = cases
        .iter()
        .filter(|c| c.result.verdict == Verdict::Skip)
        .count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites><testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"{skipped}\" time=\"{total:.3}\">",
        escape(suite),
        cases.len()
    );
    for case in cases {
        let _ = write!(
            xml,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            escape(suite),
            escape(&case.result.name),
            case.seconds
        );
        match case.result.verdict {
            Verdict::Fail => {
                let _ = write!(
                    xml,
                    "<failure message=\"{}\"/>",
                    escape(&case.result.detail)
                );
            }
            Verdict::Skip => {
                let _ = write!(
                    xml,
                    "<skipped message=\"{}\"/>",
                    escape(&case.result.detail)
                );
            }
            Verdict::Pass | Verdict::Flaky => {}
        }
        let mut stderr = case.stderr.clone();
        if case.result.verdict == Verdict::Flaky {
            stderr = format!("flaky test failed: {}\n{stderr}", case.result.detail);
        }
        if !case.stdout.is_empty() {
            let _ = write!(xml, "<system-out>{}</system-out>", escape(&case.stdout));
        }
        if !stderr.is_empty() {
            let _ = write!(xml, "<system-err>{}</system-err>", escape(&stderr));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite></testsuites>\n");
    xml
}

/// Text for XML: markup escaped, characters XML cannot carry left out.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tests_and_test_commands_are_counted_as_autopkgtest_names_them() {
        let control = "# the tests\nTests: smoke, greeting\n  extra\nDepends: @\n\
                       Restrictions: superficial\n\nTest-Command: true\n\n\
                       Test-Command: hello\nRestrictions: needs-root, isolation-machine\n";
        let tests = declared_tests(control).unwrap();
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["smoke", "greeting", "extra", "command1", "command2"]
        );
        assert_eq!(tests[0].restrictions, ["superficial"]);
        assert_eq!(tests[4].restrictions, ["needs-root", "isolation-machine"]);
        assert!(declared_tests("Depends: @\n").is_err());
        assert!(declared_tests("Tests: a\nTest-Command: b\n").is_err());
        assert!(declared_tests("").unwrap().is_empty());
    }

    #[test]
    fn summaries_give_each_verdict() {
        let summary = "smoke                PASS (superficial)\n\
                       greeting             FAIL non-zero exit status 1\n\
                       reboot               SKIP Test needs-reboot but testbed does not provide it\n\
                       reboot               SKIP Test needs-reboot but testbed does not provide it\n\
                       flaky                FLAKY non-zero exit status 1\n\
                       *                    SOMETHING\n";
        let results = parse_summary(summary);
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].verdict, Verdict::Pass);
        assert_eq!(results[1].detail, "non-zero exit status 1");
        assert_eq!(results[2].verdict, Verdict::Skip);
        assert_eq!(results[3].verdict, Verdict::Flaky);
    }

    #[test]
    fn junit_reports_each_test() {
        let case = |name: &str, verdict, out: &str| JunitCase {
            result: TestResult {
                name: name.into(),
                verdict,
                detail: "non-zero exit status 1".into(),
            },
            seconds: 1.5,
            stdout: out.into(),
            stderr: String::new(),
        };
        let xml = junit(
            "hello-ci",
            &[
                case("smoke", Verdict::Pass, "Hello <world> & \u{1b}[0m"),
                case("greeting", Verdict::Fail, ""),
                case("skipped", Verdict::Skip, ""),
            ],
        );
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"4.500\"")
        );
        assert!(xml.contains("<testcase classname=\"hello-ci\" name=\"greeting\" time=\"1.500\"><failure message=\"non-zero exit status 1\"/>"));
        assert!(xml.contains("<system-out>Hello &lt;world&gt; &amp; [0m</system-out>"));
        assert!(xml.contains("<skipped message="));
    }
}
