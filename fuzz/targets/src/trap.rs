//! Target `trap`: ESR_EL2 values (8 bytes, little-endian; a 9th byte's bit 0 clear selects a
//! GICv2 board) through `tessera_trap::decode` and the fault-report text. Invariants: the
//! decoded exit agrees with the exception class, register numbers and access sizes are in
//! range (`tessera_trap::check`), and every abort's report renders.

use std::fmt::Write;

use tessera_trap::Esr;

use crate::Input;

/// One input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let raw = input.u64();
    let gic_v3 = data.len() < 9 || input.u8() & 1 == 1;
    tessera_trap::check(raw, gic_v3);
    let esr = Esr(raw);
    assert!(!esr.class_name().is_empty());
    if let Some(detail) = esr.abort_detail() {
        let mut text = String::new();
        write!(text, "{detail}").expect("formatting into a String");
        assert!(!text.is_empty());
    }
}
