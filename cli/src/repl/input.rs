//! What the user typed: shell commands (`\q`, `help`) and where SQL statements end.

/// A command of the shell itself, not SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    /// A psql-style backslash command that stands for SQL: `\d` (tables and views), `\dt`,
    /// `\dv`, `\d name` (DESCRIBE).
    Sql(String),
    /// A backslash command the shell does not know.
    Unknown(String),
}

/// The shell command on a first input line, if it is one. `exit` and `quit` count only alone
/// on the line (with an optional `;`), so SQL that starts with those words is not taken.
pub fn command(line: &str) -> Option<Command> {
    let line = line.trim();
    let word = line.trim_end_matches(';').trim().to_ascii_lowercase();
    match word.as_str() {
        "\\q" | "exit" | "quit" => Some(Command::Quit),
        "\\h" | "\\?" | "help" => Some(Command::Help),
        "\\d" => Some(Command::Sql("SHOW TABLES; SHOW VIEWS;".into())),
        "\\dt" => Some(Command::Sql("SHOW TABLES;".into())),
        "\\dv" => Some(Command::Sql("SHOW VIEWS;".into())),
        _ if matches!(line.split_whitespace().next(), Some("\\d" | "\\d+")) => {
            let name = line.split_once(char::is_whitespace).map_or("", |(_, name)| name.trim_end_matches(';').trim());
            Some(Command::Sql(format!("DESCRIBE {name};")))
        }
        _ if line.starts_with('\\') => Some(Command::Unknown(line.to_string())),
        _ => None,
    }
}

/// Whether `buffer` holds whole statements: its last token outside quotes and comments is `;`.
pub fn is_complete(buffer: &str) -> bool {
    #[derive(PartialEq)]
    enum In {
        Code,
        Quote(char),
        LineComment,
        BlockComment,
    }
    let mut state = In::Code;
    let mut last = None;
    let mut chars = buffer.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                '\'' | '"' | '`' => {
                    state = In::Quote(c);
                    last = Some(c);
                }
                '-' if chars.peek() == Some(&'-') => state = In::LineComment,
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    state = In::BlockComment;
                }
                c if c.is_whitespace() => {}
                c => last = Some(c),
            },
            // A doubled quote inside a string leaves and re-enters it, which needs no case.
            In::Quote(q) if c == q => state = In::Code,
            In::Quote(_) => {}
            In::LineComment if c == '\n' => state = In::Code,
            In::LineComment => {}
            In::BlockComment if c == '*' && chars.peek() == Some(&'/') => {
                chars.next();
                state = In::Code;
            }
            In::BlockComment => {}
        }
    }
    matches!(state, In::Code | In::LineComment) && last == Some(';')
}

/// Whether `buffer` has nothing but whitespace and comments.
pub fn is_blank(buffer: &str) -> bool {
    buffer.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with("--")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_end_with_a_semicolon_outside_quotes_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- done\n"));
        assert!(is_complete("SELECT ';' ;"));
        assert!(is_complete("SELECT 'it''s';"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("CREATE TABLE t (\n  a INT;\n  b INT"));
        assert!(is_complete("SELECT 1 /* x */;"));
    }

    #[test]
    fn shell_commands() {
        assert_eq!(command("\\q"), Some(Command::Quit));
        assert_eq!(command(" exit; "), Some(Command::Quit));
        assert_eq!(command("QUIT"), Some(Command::Quit));
        assert_eq!(command("help"), Some(Command::Help));
        assert_eq!(command("\\x"), Some(Command::Unknown("\\x".into())));
        assert_eq!(command("\\d"), Some(Command::Sql("SHOW TABLES; SHOW VIEWS;".into())));
        assert_eq!(command("\\dt;"), Some(Command::Sql("SHOW TABLES;".into())));
        assert_eq!(command("\\dv"), Some(Command::Sql("SHOW VIEWS;".into())));
        assert_eq!(command("\\d flows"), Some(Command::Sql("DESCRIBE flows;".into())));
        assert_eq!(command("\\d+ \"My Table\";"), Some(Command::Sql("DESCRIBE \"My Table\";".into())));
        assert_eq!(command("exit_code FROM t;"), None);
        assert_eq!(command("SELECT 1;"), None);
    }
}
