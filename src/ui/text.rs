//! Fitting text into terminal columns: word wrap for the log, and cuts that
//! always show an ellipsis. Widths are display columns (a CJK character takes
//! two), not bytes or chars.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Display columns of `text`.
pub fn width(text: &str) -> usize {
    text.width()
}

/// `text` in rows of at most `columns` columns, broken at spaces where a word fits and
/// inside a word where it does not. Never empty: an empty text is one empty row.
pub fn wrap(text: &str, columns: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut row_width = 0;
    for word in text.split(' ') {
        let word_width = width(word);
        let gap = usize::from(!row.is_empty());
        if row_width + gap + word_width <= columns {
            if gap == 1 {
                row.push(' ');
            }
            row.push_str(word);
            row_width += gap + word_width;
            continue;
        }
        if !row.is_empty() {
            rows.push(std::mem::take(&mut row));
            row_width = 0;
        }
        // A word longer than a row is cut where the row ends.
        for ch in word.chars() {
            let ch_width = ch.width().unwrap_or(0);
            if row_width + ch_width > columns && !row.is_empty() {
                rows.push(std::mem::take(&mut row));
                row_width = 0;
            }
            row.push(ch);
            row_width += ch_width;
        }
    }
    rows.push(row);
    rows
}

/// `text` cut to `columns` columns, ending in `…` when it was cut.
pub fn elide_end(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_owned();
    }
    let mut kept = String::new();
    let mut kept_width = 0;
    for ch in text.chars() {
        let ch_width = ch.width().unwrap_or(0);
        if kept_width + ch_width + 1 > columns {
            break;
        }
        kept.push(ch);
        kept_width += ch_width;
    }
    if columns > 0 {
        kept.push('…');
    }
    kept
}

/// `…/you/games`: the end of a path is the part that tells paths apart.
pub fn elide_start(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_owned();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut kept_width = 0;
    for ch in text.chars().rev() {
        let ch_width = ch.width().unwrap_or(0);
        if kept_width + ch_width + 1 > columns {
            break;
        }
        kept.push(ch);
        kept_width += ch_width;
    }
    let tail: String = kept.into_iter().rev().collect();
    if columns == 0 { tail } else { format!("…{tail}") }
}

/// A message in one row of `columns`, keeping its cause: messages read
/// `<what failed>: <why>`, and when both do not fit, the preamble is cut first (to no
/// less than [`MIN_PREAMBLE`] columns), then the middle of the cause, whose end is the
/// innermost reason (`every peer failed (…connection lost: timed out)`).
pub fn fit_message(text: &str, columns: usize) -> String {
    if width(text) <= columns {
        return text.to_owned();
    }
    let Some((preamble, cause)) = text.split_once(": ") else {
        return elide_middle(text, columns);
    };
    let least_preamble = width(preamble).min(MIN_PREAMBLE).min(columns / 3);
    let cause = elide_middle(cause, columns.saturating_sub(least_preamble + 2));
    let preamble = elide_end(preamble, columns.saturating_sub(width(&cause) + 2));
    format!("{preamble}: {cause}")
}

/// What is kept of a message's preamble (which game, which operation) when its cause
/// needs the room.
pub const MIN_PREAMBLE: usize = 32;

/// `text` in `columns`: its first third and its end, with `…` between (game names
/// often differ only at the end: `... Part 2`).
pub fn elide_middle(text: &str, columns: usize) -> String {
    if width(text) <= columns || columns < 2 {
        return elide_end(text, columns);
    }
    let head = elide_end(text, columns / 3 + 1);
    let head = head.trim_end_matches('…');
    let tail = elide_start(text, columns - width(head));
    format!("{head}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_inside_words_too_long_for_a_row() {
        assert_eq!(wrap("every peer failed", 10), ["every peer", "failed"]);
        assert_eq!(
            wrap("127.0.0.1:41810:connection", 10),
            ["127.0.0.1:", "41810:conn", "ection"]
        );
        assert_eq!(wrap("", 10), [""]);
        assert_eq!(wrap("fits", 10), ["fits"]);
        // Wide characters take two columns.
        assert_eq!(wrap("日本語の", 4), ["日本", "語の"]);
        for row in wrap("a b c dddddddddddddddd e", 5) {
            assert!(width(&row) <= 5, "{row}");
        }
    }

    #[test]
    fn cuts_show_an_ellipsis_and_fit() {
        assert_eq!(elide_end("Unreal Tournament 2004", 10), "Unreal To…");
        assert_eq!(elide_end("Quake", 10), "Quake");
        assert_eq!(elide_start("/home/you/games", 10), "…you/games");
        assert_eq!(width(&elide_end("日本語の本", 5)), 5);
    }

    #[test]
    fn a_long_message_keeps_its_cause_and_cuts_the_preamble_first() {
        // The reported case: at 80 columns the cause was cut after "conne".
        let message = "download of Unreal Tournament 2004 Game of the Year Edition failed: every peer \
                       failed (127.0.0.1:41810: connection lost: timed out)";
        let fitted = fit_message(message, 80);
        assert_eq!(width(&fitted), 80, "{fitted}");
        assert!(fitted.ends_with("timed out)"), "{fitted}");
        assert!(fitted.starts_with("download of Unreal"), "{fitted}");
        // The preamble keeps its minimum, and the cause its start and its end.
        assert!(
            fitted.starts_with("download of Unreal Tourna…: every peer failed"),
            "{fitted}"
        );
        assert!(fitted.contains('…'), "{fitted}");
        let fitted = fit_message(message, 40);
        assert_eq!(width(&fitted), 40, "{fitted}");
        assert!(fitted.starts_with("download of …: every pe"), "{fitted}");
        assert!(fitted.ends_with("timed out)"), "{fitted}");
        assert_eq!(fit_message("short: fine", 80), "short: fine");
    }
}
