//! The connection core driven without sockets: an in-memory socket (`mem`), a harness
//! that plays the server's part with a clock the test moves (`pair`), and the tests
//! that need time to pass (`timeouts`).

mod mem;
mod pair;
mod timeouts;
