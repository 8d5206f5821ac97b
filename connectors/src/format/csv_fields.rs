//! Splitting CSV records into fields (RFC 4180), one physical line at a time.
//!
//! Fed line by line so that a reader can bound how far a quoted field may run and start again at
//! the next line when it runs too far. The syntax is strict where leniency would hide damage: a
//! closing quote must end its field (`"ab"c` is an error, not `abc`). A quote inside an unquoted
//! field is kept as a literal character, as most writers and readers do.
//!
//! ```text
//!             delimiter                    '"'
//!   ┌──────────────────────┐      ┌───────────────────┐
//!   ▼       other byte     │      │        '"' ('""' = one quote)
//! FieldStart ──────────▶ Unquoted │   ┌────────────────────┐
//!   │  '"'                        ▼   │                    │
//!   └───────────────────────▶ Quoted ─┴─'"'─▶ QuoteInQuoted ─┤ delimiter / end of line: field ends
//!                           (a line end inside continues     └ other byte: error
//!                            the field on the next line)
//! ```

/// Where the splitter is inside a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either the first of `""` or the end of the field.
    QuoteInQuoted,
}

/// What a fed line did to the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The record ended with this line.
    Complete,
    /// The line ended inside a quoted field: the record continues on the next line.
    InQuotes,
}

/// Splits one record at a time into fields, keeping their unescaped bytes.
pub struct FieldSplitter {
    delimiter: u8,
    /// The unescaped contents of the fields so far, back to back.
    text: Vec<u8>,
    /// Where each finished field ends in `text`.
    ends: Vec<usize>,
    state: State,
    /// The fields of a line split by [`FieldSplitter::split_plain`], as ranges of that line.
    ranges: Vec<(usize, usize)>,
}

impl FieldSplitter {
    pub fn new(delimiter: u8) -> Self {
        Self { delimiter, text: Vec::new(), ends: Vec::new(), state: State::FieldStart, ranges: Vec::new() }
    }

    /// Forgets the previous record.
    pub fn start(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.state = State::FieldStart;
    }

    /// Feeds one physical line, without its `\n`. A `\r` before the `\n` ends the line too,
    /// unless it is inside a quoted field. On error the record is malformed at this line.
    pub fn feed_line(&mut self, line: &[u8]) -> Result<Progress, String> {
        let (body, carriage_return) = match line.split_last() {
            Some((b'\r', body)) => (body, true),
            _ => (line, false),
        };
        // A record's line without quotes (the common case): the fields are the text between
        // delimiters, found by `split_plain` rather than stepped through byte by byte.
        if self.state == State::FieldStart && self.ends.is_empty() && self.split_plain(line) {
            for &(start, end) in &self.ranges {
                self.text.extend_from_slice(&line[start..end]);
                self.ends.push(self.text.len());
            }
            return Ok(Progress::Complete);
        }
        self.feed_bytewise(body, carriage_return)
    }

    /// [`FieldSplitter::feed_line`] through the state machine, `body` without the `\r`.
    fn feed_bytewise(&mut self, body: &[u8], carriage_return: bool) -> Result<Progress, String> {
        for &byte in body {
            self.step(byte)?;
        }
        if self.state == State::Quoted {
            if carriage_return {
                self.text.push(b'\r');
            }
            self.text.push(b'\n');
            return Ok(Progress::InQuotes);
        }
        self.ends.push(self.text.len());
        self.state = State::FieldStart;
        Ok(Progress::Complete)
    }

    /// The fields of a complete record as text; an error names the first field that is not
    /// valid UTF-8.
    pub fn fields(&self) -> Result<Fields<'_>, String> {
        match std::str::from_utf8(&self.text) {
            Ok(text) => Ok(Fields { text, bounds: Bounds::Ends(&self.ends) }),
            Err(e) => {
                let field = self.ends.iter().take_while(|&&end| end <= e.valid_up_to()).count() + 1;
                Err(format!("field {field} is not valid UTF-8"))
            }
        }
    }

    /// Splits a whole record's line that has no quote (the common case) without copying it:
    /// its fields are then [`FieldSplitter::plain_fields`] of the same line, as
    /// [`FieldSplitter::feed_line`] and [`FieldSplitter::fields`] would give them. `false` when
    /// the line has a quote; nothing is split then.
    pub fn split_plain(&mut self, line: &[u8]) -> bool {
        let body = match line.split_last() {
            Some((b'\r', body)) => body,
            _ => line,
        };
        let (delimiter, ranges) = (self.delimiter, &mut self.ranges);
        ranges.clear();
        let mut start = 0;
        // Eight bytes at a time: the delimiters' positions from a mask of the bytes equal to it.
        let mut chunks = body.chunks_exact(8);
        let mut offset = 0;
        for chunk in &mut chunks {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            let word = u64::from_le_bytes(bytes);
            if bytes_equal(word, b'"') != 0 {
                return false;
            }
            let mut found = bytes_equal(word, delimiter);
            while found != 0 {
                let at = offset + (found.trailing_zeros() / 8) as usize;
                ranges.push((start, at));
                start = at + 1;
                found &= found - 1;
            }
            offset += 8;
        }
        for (i, &byte) in chunks.remainder().iter().enumerate() {
            if byte == b'"' {
                return false;
            }
            if byte == delimiter {
                ranges.push((start, offset + i));
                start = offset + i + 1;
            }
        }
        ranges.push((start, body.len()));
        true
    }

    /// The fields [`FieldSplitter::split_plain`] found in `line`; an error names the first field
    /// that is not valid UTF-8.
    pub fn plain_fields<'a>(&'a self, line: &'a [u8]) -> Result<Fields<'a>, String> {
        match std::str::from_utf8(line) {
            Ok(text) => Ok(Fields { text, bounds: Bounds::Ranges(&self.ranges) }),
            Err(e) => {
                let field = self.ranges.iter().take_while(|&&(_, end)| end <= e.valid_up_to()).count() + 1;
                Err(format!("field {field} is not valid UTF-8"))
            }
        }
    }

    fn step(&mut self, byte: u8) -> Result<(), String> {
        self.state = match (self.state, byte) {
            (State::FieldStart, b'"') => State::Quoted,
            (State::FieldStart | State::Unquoted | State::QuoteInQuoted, b) if b == self.delimiter => {
                self.ends.push(self.text.len());
                State::FieldStart
            }
            (State::FieldStart | State::Unquoted, b) => {
                self.text.push(b);
                State::Unquoted
            }
            (State::Quoted, b'"') => State::QuoteInQuoted,
            (State::Quoted, b) => {
                self.text.push(b);
                State::Quoted
            }
            (State::QuoteInQuoted, b'"') => {
                self.text.push(b'"');
                State::Quoted
            }
            (State::QuoteInQuoted, _) => {
                return Err(format!(
                    "field {}: a quote inside a quoted field must be doubled (\"\") or end the field",
                    self.ends.len() + 1
                ));
            }
        };
        Ok(())
    }
}

/// The high bit of each byte of `word` that equals `byte`, and no other bit.
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const LOW_BITS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let zero_where_equal = word ^ (0x0101_0101_0101_0101 * u64::from(byte));
    // A byte's high bit is set when any of its bits is: no carry crosses into the next byte.
    !(((zero_where_equal & LOW_BITS) + LOW_BITS) | zero_where_equal) & !LOW_BITS
}

/// The fields of one record, as text.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    text: &'a str,
    bounds: Bounds<'a>,
}

/// Where the fields are in the text.
#[derive(Debug, Clone, Copy)]
enum Bounds<'a> {
    /// Unescaped fields back to back: where each ends.
    Ends(&'a [usize]),
    /// The line itself: each field's range.
    Ranges(&'a [(usize, usize)]),
}

impl<'a> Fields<'a> {
    /// Field `i` (0-based), if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        let (start, end) = match self.bounds {
            Bounds::Ends(ends) => (if i == 0 { 0 } else { ends[i.checked_sub(1)?] }, *ends.get(i)?),
            Bounds::Ranges(ranges) => *ranges.get(i)?,
        };
        self.text.get(start..end)
    }

    pub fn len(&self) -> usize {
        match self.bounds {
            Bounds::Ends(ends) => ends.len(),
            Bounds::Ranges(ranges) => ranges.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(lines: &[&[u8]]) -> Result<Vec<String>, String> {
        let mut splitter = FieldSplitter::new(b',');
        splitter.start();
        for (i, line) in lines.iter().enumerate() {
            let progress = splitter.feed_line(line)?;
            let last = i + 1 == lines.len();
            assert_eq!(progress == Progress::Complete, last, "line {i} of {lines:?}");
        }
        Ok(splitter.fields()?.iter().map(str::to_string).collect())
    }

    #[test]
    fn plain_quoted_and_empty_fields() {
        assert_eq!(split(&[b"a,b,c"]), Ok(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(split(&[b"a,,"]), Ok(vec!["a".into(), String::new(), String::new()]));
        assert_eq!(
            split(&[b"\"a,b\",\"say \"\"hi\"\"\",x\r"]),
            Ok(vec!["a,b".into(), "say \"hi\"".into(), "x".into()])
        );
        assert_eq!(split(&[b"a\"b,c"]), Ok(vec!["a\"b".into(), "c".into()]));
    }

    /// Lines without quotes, split a word at a time, give the state machine's fields.
    #[test]
    fn plain_lines_split_as_the_state_machine_splits_them() {
        let alphabet: [&[u8]; 6] = [b"a", b",", b" ", b"\r", "\u{e9}".as_bytes(), b"\t"];
        let mut state: u64 = 7;
        for _ in 0..20_000 {
            let mut line = Vec::new();
            let mut next = || {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                state >> 33
            };
            for _ in 0..next() % 24 {
                line.extend_from_slice(alphabet[(next() % 6) as usize]);
            }
            let (mut fast, mut slow) = (FieldSplitter::new(b','), FieldSplitter::new(b','));
            fast.start();
            slow.start();
            assert_eq!(fast.feed_line(&line), Ok(Progress::Complete));
            let (body, carriage_return) = match line.split_last() {
                Some((b'\r', body)) => (body, true),
                _ => (&line[..], false),
            };
            assert_eq!(slow.feed_bytewise(body, carriage_return), Ok(Progress::Complete));
            assert_eq!((&fast.text, &fast.ends), (&slow.text, &slow.ends), "{line:?}");
            let mut plain = FieldSplitter::new(b',');
            assert!(plain.split_plain(&line));
            let fields: Vec<&str> = plain.plain_fields(&line).expect("UTF-8").iter().collect();
            assert_eq!(fields, slow.fields().expect("UTF-8").iter().collect::<Vec<_>>(), "{line:?}");
        }
        // A quote anywhere, in the first eight bytes or after them, leaves the line to the
        // state machine.
        for at in 0..20 {
            let mut line = b"abc,def,ghi,jkl,mno,pqr".to_vec();
            line[at] = b'"';
            assert!(!FieldSplitter::new(b',').split_plain(&line), "{at}");
        }
    }

    #[test]
    fn quoted_fields_span_lines() {
        assert_eq!(
            split(&[b"1,\"one", b"two\r", b"three\",4"]),
            Ok(vec!["1".into(), "one\ntwo\r\nthree".into(), "4".into()])
        );
    }

    #[test]
    fn a_quote_must_end_its_field() {
        let error = split(&[b"1,\"ab\"c,2"]).unwrap_err();
        assert!(error.starts_with("field 2:"), "{error}");
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        assert_eq!(split(&[b"ok,\xff\xfe,x"]), Err("field 2 is not valid UTF-8".to_string()));
        let mut splitter = FieldSplitter::new(b',');
        assert!(splitter.split_plain(b"ok,\xff\xfe,x"));
        assert_eq!(splitter.plain_fields(b"ok,\xff\xfe,x").err(), Some("field 2 is not valid UTF-8".to_string()));
    }
}
