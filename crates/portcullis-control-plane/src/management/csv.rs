//! ImportApiKeys' CSV: API Gateway's API key file format.
//!
//! A header row names the columns (case-insensitive, any order): `Name` and
//! `Key` are required; `Description`, `Enabled` (default `true`),
//! `UsagePlanIds` (several ids as one quoted, comma-separated field) and
//! `CustomerId` are read; other columns are ignored. Fields may be quoted
//! with `"` (a doubled `""` is a quote) or, as the AWS docs allow for
//! `UsagePlanIds`, with `'`.

/// One row of the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ImportRow {
    pub(crate) name: String,
    pub(crate) key: String,
    pub(crate) description: Option<String>,
    pub(crate) enabled: bool,
    pub(crate) usage_plan_ids: Vec<String>,
    pub(crate) customer_id: Option<String>,
}

/// The most rows one import may carry.
pub(crate) const MAX_IMPORT_ROWS: usize = 1000;

/// Splits one record into fields. `None` when a quote is not closed.
fn fields(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        // Leading spaces before a quote are skipped.
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        match chars.peek().copied() {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == q => {
                            if chars.peek() == Some(&q) {
                                chars.next();
                                field.push(q);
                            } else {
                                break;
                            }
                        }
                        Some(c) => field.push(c),
                        None => return None,
                    }
                }
                // Anything between the closing quote and the comma is kept.
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
            }
            _ => {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    field.push(c);
                    chars.next();
                }
            }
        }
        out.push(field.trim().to_owned());
        if chars.next().is_none() {
            return Some(out);
        }
    }
}

/// Parses the file. Errors name the row (1 is the header).
pub(crate) fn parse(text: &str) -> Result<Vec<ImportRow>, String> {
    let mut lines = text
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or("the file is empty: it needs a header row with Name and Key")?;
    let header = fields(header).ok_or("row 1: a quote is not closed")?;
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(name_at), Some(key_at)) = (column("name"), column("key")) else {
        return Err("the header must name the Name and Key columns".to_owned());
    };
    let description_at = column("description");
    let enabled_at = column("enabled");
    let plans_at = column("usageplanids");
    let customer_at = column("customerid");
    let mut rows = Vec::new();
    for (index, line) in lines {
        let row = index + 1;
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(format!(
                "at most {MAX_IMPORT_ROWS} keys can be imported at once"
            ));
        }
        let values = fields(line).ok_or_else(|| format!("row {row}: a quote is not closed"))?;
        let get = |at: Option<usize>| {
            at.and_then(|i| values.get(i))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let name = get(Some(name_at)).ok_or_else(|| format!("row {row}: Name is empty"))?;
        let key = get(Some(key_at)).ok_or_else(|| format!("row {row}: Key is empty"))?;
        let enabled = match get(enabled_at) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(format!(
                    "row {row}: Enabled must be true or false, got {v:?}"
                ));
            }
        };
        let usage_plan_ids = get(plans_at)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        rows.push(ImportRow {
            name,
            key,
            description: get(description_at),
            enabled,
            usage_plan_ids,
            customer_id: get(customer_at),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_aws_examples() {
        let rows = parse("Key,name\napikey1234abcdefghij0123456789,MyFirstApiKey\n").unwrap();
        assert_eq!(rows[0].name, "MyFirstApiKey");
        assert_eq!(rows[0].key, "apikey1234abcdefghij0123456789");
        assert!(rows[0].enabled);

        let rows = parse(
            "Enabled,Name,key,UsageplanIds\r\nfalse,MyFirstApiKey,apikey1234abcdefghij0123456789,\"c7y23b,glvrsr\"\r\n",
        )
        .unwrap();
        assert!(!rows[0].enabled);
        assert_eq!(rows[0].usage_plan_ids, ["c7y23b", "glvrsr"]);

        let rows =
            parse("name,key,usageplanids,other\nk,apikey1234abcdefghij0123456789,'a, b',x\n")
                .unwrap();
        assert_eq!(rows[0].usage_plan_ids, ["a", "b"]);
    }

    #[test]
    fn refuses_bad_files() {
        assert!(parse("").is_err());
        assert!(parse("name,value\nx,y\n").is_err());
        assert!(parse("name,key\nx,\"unclosed\n").is_err());
        assert!(parse("name,key,enabled\nx,y,maybe\n").is_err());
        assert!(parse("name,key\n,abc\n").is_err());
    }
}
