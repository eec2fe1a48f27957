//! The browser entry point, built by trunk for wasm32.

fn main() {
    dynrefer::web::start();
}
