//! Compile-time behaviour of `#[measure_energy]`: accepted forms, and misuse that must be a
//! readable `compile_error!`, not a panic or a cascade of unrelated errors. Compiler messages
//! change between releases, so the expected `.stderr` files are for the stable toolchain.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
