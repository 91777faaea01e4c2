//! `Vgic::set_initial_route`: the hypervisor's placement of an owned SPI on a vCPU (channel
//! doorbells): what the guest reads back, where an injection goes, re-routing by the guest,
//! and refusals.

mod common;
use common::gicd::*;
use common::*;
use proptest::prelude::*;
use tessera_vgic_model::RouteError;

const OWNED: [u32; 3] = [33, 48, 49];

/// Both versions, 4 vCPUs.
fn both() -> [(Version, TestVgic); 2] {
    [
        (Version::V3, vgic(Version::V3, 4, &OWNED)),
        (Version::V2, vgic(Version::V2, 4, &OWNED)),
    ]
}

#[test]
fn guest_reads_the_route_as_reset_value() {
    let [(_, mut v3), (_, mut v2)] = both();
    let mut fx = Effects::new();
    v3.set_initial_route(48, 2, &mut fx).unwrap();
    assert_eq!(v3.gicd_read(0, IROUTER + 8 * 48, 8), MPIDR[2] & 0xFF_FFFF);
    // Untouched SPIs keep the architectural reset value.
    assert_eq!(v3.gicd_read(0, IROUTER + 8 * 49, 8), 0);
    v2.set_initial_route(49, 3, &mut fx).unwrap();
    assert_eq!(v2.gicd_read(0, ITARGETSR + 49, 1), 1 << 3);
    assert_eq!(v2.gicd_read(0, ITARGETSR + 48, 1), 0);
    assert_eq!(fx.kick, 0, "nothing was pending");
}

#[test]
fn refuses_unowned_private_and_missing_vcpus() {
    for (_, mut v) in both() {
        let mut fx = Effects::new();
        assert_eq!(
            v.set_initial_route(50, 0, &mut fx),
            Err(RouteError::NotOwned(50))
        );
        assert_eq!(
            v.set_initial_route(27, 0, &mut fx),
            Err(RouteError::NotOwned(27))
        );
        assert_eq!(
            v.set_initial_route(48, 4, &mut fx),
            Err(RouteError::NoSuchVcpu(4))
        );
        assert_eq!(
            v.set_initial_route(2000, 0, &mut fx),
            Err(RouteError::NotOwned(2000))
        );
    }
}

#[test]
fn pending_spi_follows_and_its_vcpu_is_kicked() {
    for (ver, mut v) in both() {
        guest_enable(&mut v, ver, 0, 48);
        // Reset routing: vCPU 0.
        assert_eq!(v.inject(0, 48, None), Some(0));
        let mut fx = Effects::new();
        v.set_initial_route(48, 1, &mut fx).unwrap();
        assert_eq!(fx.kick, 1 << 1, "{ver:?}");
        assert!(drain(&mut v, 0).is_empty(), "{ver:?}");
        assert_eq!(drain(&mut v, 1).len(), 1, "{ver:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 64 }))]
    /// Whatever vCPU the route names, an injection (with any 1-of-N hint) goes there and the
    /// interrupt is listed for that vCPU alone; a guest re-route afterwards wins.
    #[test]
    fn injection_goes_to_the_routed_vcpu(
        v3 in any::<bool>(), vcpu in 0usize..4, hint in 0usize..4, other in 0usize..4,
    ) {
        let ver = if v3 { Version::V3 } else { Version::V2 };
        let mut v = vgic(ver, 4, &OWNED);
        let mut fx = Effects::new();
        v.set_initial_route(49, vcpu, &mut fx).unwrap();
        guest_enable(&mut v, ver, 0, 49);
        prop_assert_eq!(v.inject(hint, 49, None), Some(vcpu));
        for w in 0..4 {
            let listed = drain(&mut v, w).iter().any(|(e, _)| e.intid == 49);
            prop_assert_eq!(listed, w == vcpu);
        }
        // The guest moves it.
        let mut v = vgic(ver, 4, &OWNED);
        v.set_initial_route(49, vcpu, &mut fx).unwrap();
        guest_enable(&mut v, ver, 0, 49);
        match ver {
            Version::V3 => v.gicd_write(0, IROUTER + 8 * 49, 8, MPIDR[other] & 0xFF_FFFF, &mut fx),
            Version::V2 => v.gicd_write(0, ITARGETSR + 49, 1, 1 << other, &mut fx),
        }
        prop_assert_eq!(v.inject(hint, 49, None), Some(other));
    }
}
