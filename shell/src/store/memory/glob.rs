//! Glob patterns as Redis matches them (`stringmatchlen`): `*`, `?`,
//! `[abc]`, `[^a-z]`, and `\` escapes. Used by KEYS and SSCAN … MATCH.

pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    match_from(pattern, s, 0)
}

fn match_from(p: &[u8], s: &[u8], depth: usize) -> bool {
    // Bounded recursion: a pathological pattern answers "no match".
    if depth > 1000 {
        return false;
    }
    let (mut pi, mut si) = (0, 0);
    while pi < p.len() {
        match p[pi] {
            b'*' => {
                while pi + 1 < p.len() && p[pi + 1] == b'*' {
                    pi += 1;
                }
                if pi + 1 == p.len() {
                    return true;
                }
                for start in si..=s.len() {
                    if match_from(&p[pi + 1..], &s[start..], depth + 1) {
                        return true;
                    }
                }
                return false;
            }
            b'?' => {
                if si >= s.len() {
                    return false;
                }
                si += 1;
            }
            b'[' => {
                if si >= s.len() {
                    return false;
                }
                pi += 1;
                let not = pi < p.len() && p[pi] == b'^';
                if not {
                    pi += 1;
                }
                let mut hit = false;
                loop {
                    if pi >= p.len() {
                        // Unterminated class: Redis treats the end as ']'.
                        pi -= 1;
                        break;
                    }
                    if p[pi] == b'\\' && pi + 2 < p.len() {
                        pi += 1;
                        if p[pi] == s[si] {
                            hit = true;
                        }
                    } else if p[pi] == b']' {
                        break;
                    } else if pi + 2 < p.len() && p[pi + 1] == b'-' {
                        let (mut lo, mut hi) = (p[pi], p[pi + 2]);
                        if lo > hi {
                            std::mem::swap(&mut lo, &mut hi);
                        }
                        pi += 2;
                        if (lo..=hi).contains(&s[si]) {
                            hit = true;
                        }
                    } else if p[pi] == s[si] {
                        hit = true;
                    }
                    pi += 1;
                }
                if hit == not {
                    return false;
                }
                si += 1;
            }
            b'\\' if pi + 1 < p.len() => {
                pi += 1;
                if si >= s.len() || p[pi] != s[si] {
                    return false;
                }
                si += 1;
            }
            c => {
                if si >= s.len() || c != s[si] {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
    }
    si == s.len()
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches(b"*", b""));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(!matches(b"h?llo", b"hllo"));
        assert!(matches(b"h*llo", b"heeeello"));
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-b]llo", b"hbllo"));
        assert!(matches(b"ff:idx:\\{fp:1\\}:*", b"ff:idx:{fp:1}:all"));
        assert!(!matches(b"ff:exec:*", b"ff:idx:{fp:1}:all"));
        assert!(matches(b"a*b*c", b"axxbyyc"));
        assert!(!matches(b"a*b*c", b"axxbyy"));
    }
}
