//! The caption tokenization of pycocoevalcap: Stanford's PTBTokenizer (CoreNLP 3.4.1, lines
//! kept, lower-cased), then the punctuation tokens dropped. Every caption metric here scores
//! captions tokenized this way, as the official evaluation does.
//!
//! Written from the tokenizer's observed behaviour on captions: words (any script), numbers
//! (`1,000`, `3.14`, `3:30`, `10/20`), contractions split as in the Penn Treebank (`do n't`,
//! `it 's`, `can not`, `gon na`), quotes turned into `` `` `` and `''`, brackets into `-lrb-`-style
//! names (which survive the punctuation filter, as they do in the original, since it lists them
//! upper-case), dashes and ellipses, and symbols split from words. Characters outside the Basic
//! Multilingual Plane (emoji) are dropped, as the original drops them as untokenizable. Its rules
//! for abbreviations (`mr.`, `u.s.`) are not followed: such a word keeps its full stop apart.

/// Tokens pycocoevalcap removes after tokenizing.
const PUNCTUATION: [&str; 17] =
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"];

/// Contractions split from the word before them.
const CLITICS: [&str; 6] = ["s", "m", "d", "ll", "re", "ve"];

/// Words the Penn Treebank writes as two.
const SPLIT_WORDS: [(&str, &str, &str); 6] = [
    ("cannot", "can", "not"),
    ("gonna", "gon", "na"),
    ("gotta", "got", "ta"),
    ("wanna", "wan", "na"),
    ("lemme", "lem", "me"),
    ("gimme", "gim", "me"),
];

/// Stands for the no-break space that joins a whole number to the fraction after it while the
/// line is split (`5 1/2` is one token, written with U+00A0, as the original writes it).
const FRACTION_JOIN: char = '\u{E000}';

/// A caption as the metrics see it: tokens joined by single spaces.
pub fn tokenize(caption: &str) -> String {
    let line = caption.replace('\n', " ");
    tokens(&line).into_iter().filter(|t| !PUNCTUATION.contains(&t.as_str())).collect::<Vec<_>>().join(" ")
}

/// The tokenizer's output for one line, lower-cased, before the punctuation filter.
pub fn tokens(line: &str) -> Vec<String> {
    static MIXED_NUMBER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(^|[^\p{L}\p{N}.,_:/-])([0-9]+) ([0-9]+/[0-9]+)").expect("a valid pattern")
    });
    let mut out = Vec::new();
    let joined = MIXED_NUMBER.replace_all(line, format!("${{1}}${{2}}{FRACTION_JOIN}${{3}}"));
    let normalized: String = joined
        .chars()
        .filter(|c| (*c as u32) <= 0xFFFF)
        .flat_map(|c| match c {
            '\u{2014}' | '\u{2013}' => " -- ".chars().collect::<Vec<_>>(),
            '\u{2026}' => " ... ".chars().collect(),
            '\u{00BC}' => "1/4".chars().collect(),
            '\u{00BD}' => "1/2".chars().collect(),
            '\u{00BE}' => "3/4".chars().collect(),
            c => vec![c],
        })
        .collect();
    for chunk in normalized.split_whitespace() {
        chunk_tokens(&chunk.chars().collect::<Vec<_>>(), &mut out);
    }
    out.into_iter().map(|t| t.to_lowercase().replace(FRACTION_JOIN, "\u{00A0}")).collect()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits one whitespace-free chunk.
fn chunk_tokens(chars: &[char], out: &mut Vec<String>) {
    let n = chars.len();
    let at = |i: usize| chars.get(i).copied();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        let next = at(i + 1);
        let opening = i == 0 || matches!(chars[i - 1], '(' | '[' | '{' | '"' | '\'' | '`');
        match c {
            '"' => {
                let opens = opening && next.is_some();
                out.push(if opens { "``" } else { "''" }.into());
                i += 1;
            }
            '\'' if next == Some('\'') => {
                out.push("''".into());
                i += 2;
            }
            '`' if next == Some('`') => {
                out.push("``".into());
                i += 2;
            }
            '\'' => {
                // A clitic right after a word was taken with the word; here it stands alone.
                if let Some(len) = clitic_at(chars, i) {
                    out.push(chars[i..i + len].iter().collect());
                    i += len;
                } else {
                    let opens = opening && next.is_some_and(|c| !c.is_whitespace());
                    out.push(if opens { "`" } else { "'" }.into());
                    i += 1;
                }
            }
            '`' => {
                out.push("`".into());
                i += 1;
            }
            '(' | ')' | '[' | ']' | '{' | '}' => {
                let name = match c {
                    '(' => "-LRB-",
                    ')' => "-RRB-",
                    '[' => "-LSB-",
                    ']' => "-RSB-",
                    '{' => "-LCB-",
                    _ => "-RCB-",
                };
                out.push(name.into());
                i += 1;
            }
            '?' | '!' => {
                let end = run_end(chars, i, |c| c == '?' || c == '!');
                out.push(chars[i..end].iter().collect());
                i = end;
            }
            '.' => {
                let end = run_end(chars, i, |c| c == '.');
                out.push(if end - i >= 3 { "..." } else { "." }.into());
                i = if end - i >= 3 { end } else { i + 1 };
            }
            '-' => {
                let end = run_end(chars, i, |c| c == '-');
                out.push(if end - i >= 2 { "--" } else { "-" }.into());
                i = end;
            }
            '#' | '@' if next.is_some_and(char::is_alphabetic) => {
                let end = run_end(chars, i + 1, is_word_char);
                out.push(chars[i..end].iter().collect());
                i = end;
            }
            c if is_word_char(c) => i = word(chars, i, out),
            c => {
                out.push(c.to_string());
                i += 1;
            }
        }
    }
}

fn run_end(chars: &[char], from: usize, keep: impl Fn(char) -> bool) -> usize {
    from + chars[from..].iter().take_while(|&&c| keep(c)).count()
}

/// The length of a clitic (`'s`, `'ll`, …) starting at the apostrophe `at`, when the word ends
/// after it.
fn clitic_at(chars: &[char], at: usize) -> Option<usize> {
    let rest: String = chars[at + 1..].iter().take_while(|c| is_word_char(**c)).collect();
    let lower = rest.to_lowercase();
    CLITICS.contains(&lower.as_str()).then_some(1 + rest.chars().count())
}

/// Takes the word starting at `start` (and the clitic after it), returns where the next token starts.
fn word(chars: &[char], start: usize, out: &mut Vec<String>) -> usize {
    let n = chars.len();
    let digit = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_digit());
    let word_at = |i: usize| chars.get(i).is_some_and(|&c| is_word_char(c));
    let mut end = start;
    while end < n {
        let c = chars[end];
        let inner = end > start && word_at(end - 1) && word_at(end + 1);
        let joins = match c {
            c if is_word_char(c) => true,
            // Hyphenated words and dotted names (`x-ray`, `red.blue`) stay whole; `--` splits.
            '-' | '/' => inner,
            FRACTION_JOIN => true,
            '.' => inner,
            // Thousands and times join digits only.
            ',' | ':' => inner && digit(end - 1) && digit(end + 1),
            _ => false,
        };
        if !joins {
            break;
        }
        end += 1;
    }
    let text: String = chars[start..end].iter().collect();
    let lower = text.to_lowercase();
    if let Some((_, first, second)) = SPLIT_WORDS.iter().find(|(w, _, _)| *w == lower) {
        out.push(first.to_string());
        out.push(second.to_string());
        return end;
    }
    // `n't`: the `n` leaves the word (`ca n't`, `do n't`).
    if chars.get(end) == Some(&'\'')
        && chars.get(end + 1).is_some_and(|c| c.eq_ignore_ascii_case(&'t'))
        && !word_at(end + 2)
        && end > start + 1
        && chars[end - 1].eq_ignore_ascii_case(&'n')
    {
        out.push(chars[start..end - 1].iter().collect());
        out.push(chars[end - 1..end + 2].iter().collect());
        return end + 2;
    }
    // A single letter before a full stop is an initial and keeps it (`a.`, `j.`).
    if end == start + 1 && chars[start].is_alphabetic() && chars.get(end) == Some(&'.') {
        out.push(format!("{text}."));
        return end + 1;
    }
    out.push(text);
    if chars.get(end) == Some(&'\'')
        && let Some(len) = clitic_at(chars, end)
    {
        out.push(chars[end..end + len].iter().collect());
        return end + len;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_the_penn_treebank() {
        let cases = [
            ("A man's red bike, parked near the \"old\" café.", "a man 's red bike , parked near the `` old '' café ."),
            ("Don't go! It can't be... (really)", "do n't go ! it ca n't be ... -lrb- really -rrb-"),
            ("x - y x-y x--y two -- dogs", "x - y x-y x -- y two -- dogs"),
            ("1,000 3.14 3:30 10/20 1.5% $5 3.", "1,000 3.14 3:30 10/20 1.5 % $ 5 3 ."),
            ("I'm gonna cannot won't they'll", "i 'm gon na can not wo n't they 'll"),
            ("'quoted' dogs' ok?!", "` quoted ' dogs ' ok ?!"),
            ("#3 #tag @me a*b", "# 3 #tag @me a * b"),
            ("tower \u{2014} dash \u{1F600}", "tower -- dash"),
            ("(5 1/2) 1,000 1/2 #5 1/2", "-lrb- 5\u{a0}1/2 -rrb- 1,000 1/2 # 5\u{a0}1/2"),
            ("a b. c... ok.", "a b. c. . . ok ."),
        ];
        for (text, want) in cases {
            assert_eq!(tokens(text).join(" "), want, "{text}");
        }
    }

    #[test]
    fn drops_punctuation_but_not_bracket_names() {
        assert_eq!(tokenize("A (red) car, parked."), "a -lrb- red -rrb- car parked");
        assert_eq!(tokenize("  "), "");
    }
}
