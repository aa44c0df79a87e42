//! The protection chains a definition needs: one per authorizer and
//! API-key combination.

/// The protection a chain applies: the authorizer scheme (if any) and
/// whether an API key is required.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChainKey {
    pub(crate) auth: Option<(AuthKind, String)>,
    pub(crate) api_key: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum AuthKind {
    Iam,
    Cognito,
    Custom,
}
