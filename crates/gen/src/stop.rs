//! Stop rules applied to a token stream, holding back only text that may begin a stop string.

/// Feeds generated text through stop strings.
///
/// Text is released as soon as it cannot be the start of a stop string, so the stream
/// shows nothing that a later stop would have to retract. Leading whitespace is dropped,
/// so a stop on `"\n"` does not fire before the reply begins.
#[derive(Debug, Clone)]
pub struct StopScanner {
    stops: Vec<String>,
    pending: String,
    text: String,
    stopped: bool,
}

impl StopScanner {
    /// A scanner for these stop strings (empty ones are ignored).
    pub fn new(stops: Vec<String>) -> StopScanner {
        StopScanner {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
            text: String::new(),
            stopped: false,
        }
    }

    /// Adds generated text; returns what may now be shown. After a stop fires, returns
    /// empty strings and [`StopScanner::stopped`] is true.
    pub fn push(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.pending.push_str(piece);
        if self.text.is_empty() {
            let trimmed = self.pending.trim_start();
            if trimmed.len() != self.pending.len() {
                self.pending = trimmed.to_owned();
            }
        }
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            self.pending.truncate(at);
            self.stopped = true;
            let released = std::mem::take(&mut self.pending);
            self.text.push_str(&released);
            return released;
        }
        // Hold back the longest tail of `pending` that is a proper prefix of some stop string.
        let hold = self
            .stops
            .iter()
            .map(|stop| {
                (1..stop.len().min(self.pending.len() + 1))
                    .rev()
                    .find(|&n| stop.is_char_boundary(n) && self.pending.ends_with(&stop[..n]))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let release_at = self.pending.len() - hold;
        let released: String = self.pending.drain(..release_at).collect();
        self.text.push_str(&released);
        released
    }

    /// Whether a stop string has been seen.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Ends the stream: releases held text that never became a stop string. Returns it.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let rest = std::mem::take(&mut self.pending);
        self.text.push_str(&rest);
        rest
    }

    /// Everything released so far.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, String, bool) {
        let mut s = StopScanner::new(stops.iter().map(|s| s.to_string()).collect());
        let mut streamed = String::new();
        for p in pieces {
            streamed.push_str(&s.push(p));
        }
        let stopped = s.stopped();
        streamed.push_str(&s.finish());
        (streamed, s.text().to_owned(), stopped)
    }

    #[test]
    fn stops_at_another_speaker_split_over_tokens() {
        let (streamed, text, stopped) =
            run(&["Player:"], &["Aye", ", love. Pla", "yer", ": what?"]);
        assert_eq!(streamed, "Aye, love. ");
        assert_eq!(text, streamed);
        assert!(stopped);
    }

    #[test]
    fn releases_a_false_start() {
        let (streamed, _, stopped) = run(&["Player:"], &["Play", "ful as ever."]);
        assert_eq!(streamed, "Playful as ever.");
        assert!(!stopped);
    }

    #[test]
    fn leading_newlines_do_not_stop() {
        let (streamed, _, stopped) = run(&["\n"], &["\n", " Hello", " there\nPip: hi"]);
        assert_eq!(streamed, "Hello there");
        assert!(stopped);
    }

    #[test]
    fn multibyte_text_is_safe() {
        let (streamed, _, _) = run(&["é:"], &["café", " olé", "é"]);
        assert_eq!(streamed, "café oléé");
    }
}
