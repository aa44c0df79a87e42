//! Countries from a MaxMind-format database (GeoIP2 / GeoLite2 Country or
//! City, DB-IP's country lite, or any `.mmdb` with `country.iso_code`).

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

use crate::engine::CountryLookup;
use crate::error::LoadError;

/// A [`CountryLookup`] over a MaxMind-format database, read with the
/// [`maxminddb`] crate. It answers a record's `country.iso_code`, or its
/// `registered_country.iso_code` where the record has no country (anycast and
/// satellite networks), as GeoIP2 databases lay them out.
///
/// ```
/// use portcullis_waf::{MaxMindCountries, WafLayer};
///
/// let countries = MaxMindCountries::open("tests/fixtures/geo/country.mmdb")?;
/// # use portcullis_waf::CountryLookup;
/// assert_eq!(countries.country("192.0.2.10".parse().unwrap()), Some(*b"US"));
/// let layer = WafLayer::from_json(r#"{"Name": "acl", "DefaultAction": {"Allow": {}}, "Rules": []}"#)?
///     .country_lookup(countries);
/// # Ok::<(), portcullis_waf::LoadError>(())
/// ```
pub struct MaxMindCountries {
    reader: Reader<Vec<u8>>,
    source: String,
}

impl fmt::Debug for MaxMindCountries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaxMindCountries")
            .field("source", &self.source)
            .field("database_type", &self.reader.metadata().database_type)
            .finish_non_exhaustive()
    }
}

impl MaxMindCountries {
    /// Reads the database at `path` into memory.
    ///
    /// # Errors
    ///
    /// A [`LoadError`] when the file cannot be read or is not a MaxMind DB.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let source = format!("MaxMind database {}", path.display());
        let bytes = std::fs::read(path).map_err(|e| LoadError::Io {
            source: source.clone(),
            message: e.to_string(),
        })?;
        Self::build(bytes, source)
    }

    /// A database already in memory (for example embedded with
    /// `include_bytes!` or fetched by the application).
    ///
    /// # Errors
    ///
    /// A [`LoadError`] when `bytes` are not a MaxMind DB.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, LoadError> {
        Self::build(bytes, "MaxMind database".to_owned())
    }

    fn build(bytes: Vec<u8>, source: String) -> Result<Self, LoadError> {
        let reader = Reader::from_source(bytes).map_err(|e| LoadError::Database {
            source: source.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { reader, source })
    }

    /// The database's type from its metadata, such as `GeoLite2-Country`.
    #[must_use]
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }
}

fn iso_code(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        &[a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

impl CountryLookup for MaxMindCountries {
    fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        let found = self.reader.lookup(ip.to_canonical()).ok()?;
        if !found.has_data() {
            return None;
        }
        [
            [PathElement::Key("country"), PathElement::Key("iso_code")],
            [
                PathElement::Key("registered_country"),
                PathElement::Key("iso_code"),
            ],
        ]
        .iter()
        .find_map(|path| {
            found
                .decode_path::<&str>(path)
                .ok()
                .flatten()
                .and_then(iso_code)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> MaxMindCountries {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/geo/country.mmdb"
        );
        MaxMindCountries::open(path).unwrap()
    }

    #[test]
    fn looks_up_the_fixture_ranges() {
        let db = fixture();
        assert_eq!(db.database_type(), "GeoLite2-Country");
        let country = |ip: &str| db.country(ip.parse().unwrap());
        assert_eq!(country("192.0.2.1"), Some(*b"US"));
        assert_eq!(country("198.51.100.200"), Some(*b"DE"));
        assert_eq!(country("203.0.113.5"), Some(*b"JP"));
        assert_eq!(country("203.0.113.200"), None, "outside the /25");
        assert_eq!(country("2001:db8:1::7"), Some(*b"US"));
        assert_eq!(country("2001:db8:2:ffff::1"), Some(*b"DE"));
        assert_eq!(country("::ffff:198.51.100.1"), Some(*b"DE"), "v4-mapped");
        assert_eq!(country("10.0.0.1"), None);
        assert_eq!(country("2001:db8:3::1"), None);
    }

    #[test]
    fn refuses_what_is_not_a_database() {
        let err = MaxMindCountries::from_bytes(b"not a database".to_vec()).unwrap_err();
        assert!(matches!(err, LoadError::Database { .. }), "{err}");
        let err = MaxMindCountries::open("/nonexistent/country.mmdb").unwrap_err();
        assert!(matches!(err, LoadError::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/country.mmdb"),
            "{err}"
        );
    }

    #[test]
    fn iso_codes_are_two_letters() {
        assert_eq!(iso_code("us"), Some(*b"US"));
        assert_eq!(iso_code("USA"), None);
        assert_eq!(iso_code("1A"), None);
        assert_eq!(iso_code(""), None);
    }
}
