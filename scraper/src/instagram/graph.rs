//! The Graph API source.
