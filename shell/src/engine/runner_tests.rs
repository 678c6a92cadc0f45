//! Unit tests of the runner with a mocked Store (written next).
