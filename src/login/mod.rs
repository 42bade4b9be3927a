//! `--login` and `--logout` (issue #21): signing in without another tool, and signing out.
//!
//! [`start`] is the mode (runtime, Ctrl-C, the time limit, what is printed); [`browser`] is the
//! authorization-code flow with PKCE, whose local [`callback`] server shows the [`pages`];
//! [`device`] is the device-code flow for machines without a browser; [`logout`] removes a Codex
//! credential. The protocol (PKCE, the authorize URL, the code exchange) and where a credential
//! is saved live below, in `auth::login_exchange` and `auth::login_store`, so this folder only
//! talks to people and to the issuer's endpoints Codex's flows use.

pub(crate) mod browser;
pub(crate) mod callback;
pub(crate) mod device;
pub(crate) mod logout;
pub(crate) mod pages;
pub(crate) mod start;
