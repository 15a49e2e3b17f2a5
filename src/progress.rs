//! Progress of long command-line work (a backup of a large database): a bar redrawn in place
//! when stderr is a terminal, otherwise one plain line per tenth, so logs stay readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Reports how much of a known amount of bytes is done, with an estimate of the time left.
pub struct ByteProgress {
    what: &'static str,
    started: Instant,
    terminal: bool,
    last_tenth: Option<u64>,
    last_draw: Option<Instant>,
}

/// How often the terminal bar is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

impl ByteProgress {
    /// Progress of `what` (for example "backup"), drawn on stderr.
    pub fn new(what: &'static str) -> ByteProgress {
        ByteProgress {
            what,
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            last_tenth: None,
            last_draw: None,
        }
    }

    /// `done` of `total` bytes are done.
    pub fn update(&mut self, done: u64, total: u64) {
        let line = self.line(done, total);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let due = self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW_EVERY);
            if due || done >= total {
                self.last_draw = Some(Instant::now());
                let _ = write!(err, "\r\x1b[2K{line}");
                if done >= total {
                    let _ = writeln!(err);
                }
            }
        } else {
            let tenth = (done * 10).checked_div(total).unwrap_or(10);
            if self.last_tenth.is_none_or(|last| tenth > last) {
                self.last_tenth = Some(tenth);
                let _ = writeln!(err, "{line}");
            }
        }
    }

    fn line(&self, done: u64, total: u64) -> String {
        const WIDTH: u64 = 30;
        let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH) as usize;
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = if done > 0 && done < total {
            let seconds = elapsed * (total - done) as f64 / done as f64;
            format!(", about {} left", human_duration(seconds))
        } else {
            String::new()
        };
        format!(
            "{}: [{:<width$}] {percent:>3}% ({} of {}){left}",
            self.what,
            "#".repeat(filled),
            human_bytes(done),
            human_bytes(total),
            width = WIDTH as usize,
        )
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_person_would_say_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4_096), "4.1 KB");
        assert_eq!(human_bytes(2_700_000_000), "2.7 GB");
    }

    #[test]
    fn a_line_shows_the_share_done_and_the_time_left() {
        let progress = ByteProgress::new("backup");
        let line = progress.line(1_000_000, 4_000_000);
        assert!(line.starts_with("backup: [#######"), "{line}");
        assert!(line.contains(" 25% (1.0 MB of 4.0 MB), about "), "{line}");
        let done = progress.line(4_000_000, 4_000_000);
        assert!(done.ends_with("100% (4.0 MB of 4.0 MB)"), "{done}");
    }
}
