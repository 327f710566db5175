//! The names of this process's live bridges: two bridges with one name would
//! each skip the other's events as their own echo.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use crate::config::ConfigError;

static NAMES: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Holds a bridge name for the bridge's lifetime.
#[derive(Debug)]
pub(crate) struct NameGuard(String);

impl NameGuard {
    pub(crate) fn claim(name: &str) -> Result<Self, ConfigError> {
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        if !names
            .get_or_insert_with(HashSet::new)
            .insert(name.to_owned())
        {
            return Err(ConfigError::NameInUse {
                name: name.to_owned(),
            });
        }
        Ok(Self(name.to_owned()))
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(names) = names.as_mut() {
            names.remove(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_held_until_released() {
        let first = NameGuard::claim("names-test").unwrap();
        assert_eq!(
            NameGuard::claim("names-test").unwrap_err(),
            ConfigError::NameInUse {
                name: "names-test".into()
            }
        );
        drop(first);
        assert!(NameGuard::claim("names-test").is_ok());
    }
}
