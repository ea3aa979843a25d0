//! The writesync native server (in progress).
fn main() {
    eprintln!("writesync: the server is not built yet");
    std::process::exit(2);
}
