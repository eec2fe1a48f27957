//! METEOR 1.5, scored by its own jar as pycocoevalcap runs it: one `java -jar meteor-1.5.jar - -
//! -stdio -l en -norm` process, a `SCORE` line per segment for its statistics, then one `EVAL`
//! line over all of them, which answers each segment's score and the corpus score (computed from
//! the summed statistics, not the mean of the segments). The jar and its paraphrase table ship in
//! the `pycocoevalcap` Python package; [`find_jar`] looks there.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum MeteorError {
    #[error(
        "METEOR needs meteor-1.5.jar: install Java and `pip install pycocoevalcap==1.2` (which ships the jar), \
         or give its path with --meteor-jar or DYNREFER_METEOR_JAR"
    )]
    NoJar,
    #[error("{jar}: could not start java: {source}")]
    Start { jar: PathBuf, source: std::io::Error },
    #[error("METEOR stopped answering: {0}")]
    Io(#[from] std::io::Error),
    #[error("METEOR answered {0:?} where a number was expected")]
    Answer(String),
}

/// Where meteor-1.5.jar is: `DYNREFER_METEOR_JAR`, else inside the pycocoevalcap package that
/// `python3` (or `DYNREFER_PYTHON`) imports.
pub fn find_jar() -> Result<PathBuf, MeteorError> {
    if let Some(jar) = std::env::var_os("DYNREFER_METEOR_JAR") {
        return Ok(PathBuf::from(jar));
    }
    jar_of_python(&std::env::var_os("DYNREFER_PYTHON").unwrap_or_else(|| "python3".into()))
}

/// The meteor-1.5.jar of the pycocoevalcap package that `python` imports.
pub fn jar_of_python(python: &OsStr) -> Result<PathBuf, MeteorError> {
    let script = "import os, pycocoevalcap.meteor.meteor as m; print(os.path.dirname(os.path.abspath(m.__file__)))";
    let out =
        Command::new(python).args(["-c", script]).stderr(Stdio::null()).output().map_err(|_| MeteorError::NoJar)?;
    let jar = Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("meteor-1.5.jar");
    if out.status.success() && jar.is_file() { Ok(jar) } else { Err(MeteorError::NoJar) }
}

/// A running METEOR scorer.
pub struct Meteor {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

/// Each segment's score and the corpus score.
#[derive(Clone, Debug, PartialEq)]
pub struct MeteorScores {
    pub segments: Vec<f64>,
    pub corpus: f64,
}

impl Meteor {
    pub fn start(jar: &Path) -> Result<Self, MeteorError> {
        if !jar.is_file() {
            return Err(MeteorError::NoJar);
        }
        let start = |source| MeteorError::Start { jar: jar.to_path_buf(), source };
        // Run beside the jar: it finds its paraphrase table relative to itself.
        let mut child = Command::new("java")
            .args(["-jar", "-Xmx2G"])
            .arg(jar)
            .args(["-", "-", "-stdio", "-l", "en", "-norm"])
            .current_dir(jar.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(start)?;
        let input = child.stdin.take().expect("stdin is piped");
        let output = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self { child, input, output })
    }

    fn ask(&mut self, line: &str) -> Result<String, MeteorError> {
        writeln!(self.input, "{line}")?;
        self.input.flush()?;
        let mut answer = String::new();
        if self.output.read_line(&mut answer)? == 0 {
            return Err(MeteorError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(answer.trim().to_string())
    }

    fn read_number(&mut self) -> Result<f64, MeteorError> {
        let mut answer = String::new();
        self.output.read_line(&mut answer)?;
        answer.trim().parse().map_err(|_| MeteorError::Answer(answer.trim().to_string()))
    }

    /// Scores each hypothesis against its references (already tokenized).
    pub fn score(&mut self, segments: &[(&str, &[String])]) -> Result<MeteorScores, MeteorError> {
        let mut eval = String::from("EVAL");
        for (hypothesis, references) in segments {
            // The protocol separates fields with `|||`; pycocoevalcap removes it from the
            // hypothesis (only), then one doubled space.
            let hypothesis = hypothesis.replace("|||", "").replace("  ", " ");
            let stats = self.ask(&format!("SCORE ||| {} ||| {hypothesis}", references.join(" ||| ")))?;
            eval.push_str(" ||| ");
            eval.push_str(&stats);
        }
        if segments.is_empty() {
            return Ok(MeteorScores { segments: Vec::new(), corpus: 0.0 });
        }
        writeln!(self.input, "{eval}")?;
        self.input.flush()?;
        let segments = (0..segments.len()).map(|_| self.read_number()).collect::<Result<Vec<_>, _>>()?;
        Ok(MeteorScores { segments, corpus: self.read_number()? })
    }
}

impl Drop for Meteor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
