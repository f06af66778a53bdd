//! Core errors → the Python exception hierarchy defined in `agent_factory.errors`.
//!
//! The classes live in Python because they inherit from two bases (e.g.
//! `ValidationError(AgentFactoryError, ValueError)`), which abi3 on 3.11 cannot
//! express from Rust.

use pyo3::PyErr;

use crate::error::Error;

pyo3::import_exception!(agent_factory.errors, AgentFactoryError);
pyo3::import_exception!(agent_factory.errors, ValidationError);
pyo3::import_exception!(agent_factory.errors, NotFoundError);
pyo3::import_exception!(agent_factory.errors, ConflictError);
pyo3::import_exception!(agent_factory.errors, InvalidStateError);
pyo3::import_exception!(agent_factory.errors, ProviderError);
pyo3::import_exception!(agent_factory.errors, StorageError);
pyo3::import_exception!(agent_factory.errors, AuthenticationError);

/// Map a core error to its Python exception.
pub fn to_py(err: Error) -> PyErr {
    match err {
        Error::Validation(m) => ValidationError::new_err(m),
        Error::NotFound(m) => NotFoundError::new_err(m),
        Error::Conflict(m) => ConflictError::new_err(m),
        Error::InvalidState(m) => InvalidStateError::new_err(m),
        Error::Provider(m) => ProviderError::new_err(m),
        Error::Storage(m) => StorageError::new_err(m),
        Error::Unauthorized(m) => AuthenticationError::new_err(m),
    }
}

/// A bad argument shape (wrong type inside a dict) as a `ValidationError`.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    ValidationError::new_err(msg.into())
}

/// Unexpected failure of the binding machinery itself.
pub fn internal(msg: impl Into<String>) -> PyErr {
    AgentFactoryError::new_err(msg.into())
}
