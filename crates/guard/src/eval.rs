//! Labelled safety sets and the measures the rails are judged by: reading the OpenAI
//! moderation set and XSTest, stratified folds for cross-validation, precision, recall, F1,
//! false-positive rate and the area under the precision-recall curve.

use std::path::{Path, PathBuf};

/// Which set a prompt comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// OpenAI's moderation evaluation set.
    Moderation,
    /// XSTest: safe prompts that look unsafe, and their unsafe contrasts.
    XsTest,
}

/// One prompt and whether it is unsafe.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The prompt.
    pub text: String,
    /// Its label.
    pub is_unsafe: bool,
    /// Where it comes from.
    pub source: Source,
}

/// What can go wrong reading a set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line or record is not what the set's format says.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The set has no prompts.
    #[error("{0}: no prompts")]
    Empty(PathBuf),
}

/// The moderation set's category labels; a prompt is unsafe when any is 1.
pub const MODERATION_CATEGORIES: [&str; 8] = ["S", "H", "V", "HR", "SH", "S3", "H2", "V2"];

/// Reads the OpenAI moderation set: one JSON object a line with `prompt` and 0/1 labels.
pub fn read_moderation(path: &Path) -> Result<Vec<Labelled>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::Format {
            path: path.to_owned(),
            line: i as u64 + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let prompt = value
            .get("prompt")
            .and_then(|p| p.as_str())
            .ok_or_else(|| bad("no string \"prompt\"".into()))?;
        let mut is_unsafe = false;
        for category in MODERATION_CATEGORIES {
            match value.get(category) {
                None | Some(serde_json::Value::Null) => {}
                Some(v) => match v.as_i64() {
                    Some(0) => {}
                    Some(1) => is_unsafe = true,
                    _ => return Err(bad(format!("label {category:?} is {v}, not 0 or 1"))),
                },
            }
        }
        out.push(Labelled {
            text: prompt.to_owned(),
            is_unsafe,
            source: Source::Moderation,
        });
    }
    non_empty(path, out)
}

/// Reads XSTest: CSV with a header naming at least `prompt` and `label` (`safe`/`unsafe`).
pub fn read_xstest(path: &Path) -> Result<Vec<Labelled>, EvalError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::Format {
                path: path.to_owned(),
                line: 1,
                message: format!("no {name:?} column"),
            })
    };
    let (prompt, label) = (column("prompt")?, column("label")?);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default();
        let is_unsafe = match field(label) {
            "safe" => false,
            "unsafe" => true,
            other => {
                return Err(EvalError::Format {
                    path: path.to_owned(),
                    line,
                    message: format!("label is {other:?}, not \"safe\" or \"unsafe\""),
                });
            }
        };
        out.push(Labelled {
            text: field(prompt).to_owned(),
            is_unsafe,
            source: Source::XsTest,
        });
    }
    non_empty(path, out)
}

fn csv_error(path: &Path, e: csv::Error) -> EvalError {
    match e.kind() {
        csv::ErrorKind::Io(_) => EvalError::Read {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        },
        _ => EvalError::Format {
            path: path.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        },
    }
}

fn non_empty(path: &Path, prompts: Vec<Labelled>) -> Result<Vec<Labelled>, EvalError> {
    if prompts.is_empty() {
        Err(EvalError::Empty(path.to_owned()))
    } else {
        Ok(prompts)
    }
}

/// Assigns each of `labels` to one of `k` folds so that every fold has its share of each
/// class. Deterministic: the same labels always give the same folds.
pub fn stratified_folds(labels: &[bool], k: usize) -> Vec<usize> {
    let k = k.max(1);
    let mut fold = vec![0; labels.len()];
    for class in [false, true] {
        // A fixed shuffle (a multiplicative hash of the index) so neighbours in the file, which
        // are often alike, spread over the folds.
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.sort_by_key(|&i| {
            (i as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(17)
        });
        for (rank, i) in members.into_iter().enumerate() {
            fold[i] = rank % k;
        }
    }
    fold
}

/// Measures of a binary decision against labels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BinaryMetrics {
    /// Of the flagged, the share that is unsafe.
    pub precision: f64,
    /// Of the unsafe, the share flagged.
    pub recall: f64,
    /// The harmonic mean of precision and recall.
    pub f1: f64,
    /// Of the safe, the share flagged.
    pub fpr: f64,
    /// Area under the precision-recall curve of the scores (average precision).
    pub auprc: f64,
    /// How many prompts.
    pub n: usize,
}

/// One judged prompt: its score, whether it was flagged, and whether it is unsafe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// How unsafe the rails think it is, 0..1.
    pub score: f32,
    /// Whether the rails flagged it.
    pub flagged: bool,
    /// Whether it is unsafe.
    pub is_unsafe: bool,
}

/// The measures of `judged`.
pub fn binary_metrics(judged: &[Judged]) -> BinaryMetrics {
    let count = |f: &dyn Fn(&Judged) -> bool| judged.iter().filter(|j| f(j)).count() as f64;
    let tp = count(&|j| j.flagged && j.is_unsafe);
    let fp = count(&|j| j.flagged && !j.is_unsafe);
    let positives = count(&|j| j.is_unsafe);
    let negatives = judged.len() as f64 - positives;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, positives);
    BinaryMetrics {
        precision,
        recall,
        f1: ratio(2.0 * precision * recall, precision + recall),
        fpr: ratio(fp, negatives),
        auprc: average_precision(judged),
        n: judged.len(),
    }
}

/// Average precision: the mean, over the unsafe prompts, of the precision among all prompts
/// scored at least as high. Ties are taken together, so the order within a tie does not matter.
fn average_precision(judged: &[Judged]) -> f64 {
    let mut sorted: Vec<&Judged> = judged.iter().collect();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let positives = sorted.iter().filter(|j| j.is_unsafe).count();
    if positives == 0 {
        return 0.0;
    }
    let (mut seen, mut tp, mut sum) = (0usize, 0usize, 0.0f64);
    let mut i = 0;
    while i < sorted.len() {
        let score = sorted[i].score;
        let tie_end = sorted[i..]
            .iter()
            .position(|j| j.score != score)
            .map_or(sorted.len(), |p| i + p);
        let tie_positives = sorted[i..tie_end].iter().filter(|j| j.is_unsafe).count();
        seen += tie_end - i;
        tp += tie_positives;
        sum += tie_positives as f64 * tp as f64 / seen as f64;
        i = tie_end;
    }
    sum / positives as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(score: f32, flagged: bool, is_unsafe: bool) -> Judged {
        Judged {
            score,
            flagged,
            is_unsafe,
        }
    }

    #[test]
    fn metrics_count_what_they_say() {
        let m = binary_metrics(&[
            judged(0.9, true, true),
            judged(0.8, true, false),
            judged(0.3, false, true),
            judged(0.1, false, false),
        ]);
        assert_eq!((m.precision, m.recall, m.fpr, m.n), (0.5, 0.5, 0.5, 4));
        // Ranked: unsafe (P=1), safe, unsafe (P=2/3): AP = (1 + 2/3) / 2.
        assert!((m.auprc - 5.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn folds_keep_each_class_spread() {
        let labels: Vec<bool> = (0..100).map(|i| i < 20).collect();
        let folds = stratified_folds(&labels, 5);
        for f in 0..5 {
            let positives = (0..100).filter(|&i| folds[i] == f && labels[i]).count();
            let negatives = (0..100).filter(|&i| folds[i] == f && !labels[i]).count();
            assert_eq!((positives, negatives), (4, 16));
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"hi\", \"S\": 0}\n{\"prompt\": \"x\", \"S\": 2}\n",
        )
        .expect("write");
        let error = read_moderation(&path).expect_err("a label of 2 is refused");
        assert!(error.to_string().contains("m.jsonl:2"), "{error}");
        let path = dir.path().join("x.csv");
        std::fs::write(&path, "id,prompt,label\n1,hello,maybe\n").expect("write");
        let error = read_xstest(&path).expect_err("an unknown label is refused");
        assert!(error.to_string().contains("x.csv:2"), "{error}");
    }
}
