//! [`export_policy!`](crate::export_policy) and the functions its exports call.

/// Exports a [`Policy`](crate::Policy) as a Switchyard plugin: defines, on wasm32 only, every
/// export of the ABI (`switchyard_abi_version`, `switchyard_key_buffer`,
/// `switchyard_plan_buffer`, `switchyard_alloc`, `switchyard_init`, `switchyard_route`, and the
/// optional `switchyard_on_reply`, always: a policy that never calls keeps the default
/// [`Policy::on_reply`](crate::Policy::on_reply)). Use it once per plugin crate, at the crate
/// root:
///
/// ```
/// use switchyard_sdk::replicate::{Replicate, Sync};
/// pub type MyPolicy = Replicate<Sync>;
/// switchyard_sdk::export_policy!(MyPolicy);
/// ```
///
/// Natively it expands to nothing, so the same crate also builds as an `rlib` for
/// [`testing`](crate::testing).
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        // `#[unsafe(no_mangle)]` counts as unsafe code; these shims only forward to the SDK.
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            static INSTANCE: $crate::__private::Slot<$policy> = $crate::__private::Slot::new();

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_abi_version() -> i32 {
                $crate::__private::abi_version()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_key_buffer() -> i32 {
                $crate::__private::key_buffer()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_plan_buffer() -> i32 {
                $crate::__private::plan_buffer()
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_alloc(len: i32) -> i32 {
                $crate::__private::alloc(len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_init(cfg_ptr: i32, cfg_len: i32) -> i32 {
                $crate::__private::init(&INSTANCE, cfg_ptr, cfg_len)
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_route(
                op: i32,
                key_len: i32,
                flags: i32,
                exptime: i64,
                value_len: i32,
                listener: i32,
            ) -> i64 {
                $crate::__private::route(
                    &INSTANCE, op, key_len, flags, exptime, value_len, listener,
                )
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn switchyard_on_reply(
                cookie: i32,
                status: i32,
                op: i32,
                key_len: i32,
            ) -> i64 {
                $crate::__private::on_reply(&INSTANCE, cookie, status, op, key_len)
            }
        };
    };
}

/// Support for [`export_policy!`](crate::export_policy) and [`testing`](crate::testing); not
/// a stable API.
#[doc(hidden)]
pub mod __private {
    use crate::abi::PLAN_CAPACITY;
    use crate::policy::{InitContext, Policy};
    use crate::request::{Op, Request};
    use crate::status::ReplyStatus;

    /// A configured policy and what encoding its plans needs.
    #[derive(Debug)]
    pub struct Instance<P> {
        pub(crate) policy: P,
        pub(crate) child_count: u32,
    }

    impl<P: Policy> Instance<P> {
        /// Parses the TOML config and runs [`Policy::init`] with the host's children.
        pub fn configure(config: &[u8]) -> Result<Self, String> {
            let text =
                std::str::from_utf8(config).map_err(|e| format!("config is not UTF-8: {e}"))?;
            let config: P::Config =
                toml::from_str(text).map_err(|e| format!("invalid config: {e}"))?;
            let ctx = InitContext::from_host();
            let policy = P::init(config, &ctx)?;
            Ok(Self {
                policy,
                child_count: ctx.child_count(),
            })
        }

        /// Routes one request and encodes the plan; returns the plan word.
        pub fn route(&mut self, request: &Request<'_>, plan: &mut [u8; PLAN_CAPACITY]) -> u64 {
            self.policy.route(request).encode(self.child_count, plan)
        }

        /// Continues a `call` and encodes the plan; returns the plan word.
        pub fn on_reply(
            &mut self,
            cookie: u32,
            status: ReplyStatus,
            request: &Request<'_>,
            plan: &mut [u8; PLAN_CAPACITY],
        ) -> u64 {
            self.policy
                .on_reply(cookie, status, request)
                .encode(self.child_count, plan)
        }
    }

    /// The request from the `route` arguments (the `i32`s are `u32`s on the wire).
    pub fn request<'k>(
        op: i32,
        key: &'k [u8],
        flags: i32,
        exptime: i64,
        value_len: i32,
        listener: i32,
    ) -> Request<'k> {
        Request::new(Op::from_code(op as u32), key)
            .with_flags(flags as u32)
            .with_exptime(exptime)
            .with_value_len(value_len as u32)
            .with_listener(listener as u32)
    }

    /// The request from the `on_reply` arguments: operation and key, every number 0.
    pub fn reply_request(op: i32, key: &[u8]) -> Request<'_> {
        Request::new(Op::from_code(op as u32), key)
    }

    #[cfg(target_arch = "wasm32")]
    pub use self::wasm::*;

    #[cfg(target_arch = "wasm32")]
    mod wasm {
        use super::Instance;
        use crate::abi::{ABI_VERSION, KEY_CAPACITY};
        use crate::policy::Policy;
        use crate::status::ReplyStatus;
        use crate::sys::{self, GuestCell};

        /// Where a plugin keeps its one policy instance.
        pub struct Slot<P>(GuestCell<Option<Instance<P>>>);

        impl<P> std::fmt::Debug for Slot<P> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Slot")
            }
        }

        impl<P> Slot<P> {
            /// An empty slot, filled by `init`.
            #[allow(clippy::new_without_default)]
            pub const fn new() -> Self {
                Self(GuestCell::new(None))
            }
        }

        /// `switchyard_abi_version`
        pub fn abi_version() -> i32 {
            ABI_VERSION as i32
        }

        /// `switchyard_key_buffer`
        pub fn key_buffer() -> i32 {
            sys::key_buffer()
        }

        /// `switchyard_plan_buffer`
        pub fn plan_buffer() -> i32 {
            sys::plan_buffer()
        }

        /// `switchyard_alloc`
        pub fn alloc(len: i32) -> i32 {
            sys::alloc_config(len)
        }

        /// `switchyard_init`: 0, or 1 after `set_error`.
        pub fn init<P: Policy>(slot: &Slot<P>, cfg_ptr: i32, cfg_len: i32) -> i32 {
            // The message goes with the trap the panic becomes: the host logs it once, with
            // the fault, under its own rate limit.
            std::panic::set_hook(Box::new(|info| {
                sys::set_error(&format!("plugin panicked: {info}"));
            }));
            let instance = sys::take_config(cfg_ptr, cfg_len)
                .and_then(|config| Instance::<P>::configure(&config));
            match instance {
                Ok(instance) => {
                    *slot.0.borrow_mut() = Some(instance);
                    0
                }
                Err(reason) => {
                    *slot.0.borrow_mut() = None;
                    sys::set_error(&reason);
                    1
                }
            }
        }

        /// `switchyard_route`
        pub fn route<P: Policy>(
            slot: &Slot<P>,
            op: i32,
            key_len: i32,
            flags: i32,
            exptime: i64,
            value_len: i32,
            listener: i32,
        ) -> i64 {
            let mut slot = slot.0.borrow_mut();
            let Some(instance) = slot.as_mut() else {
                panic!("switchyard_route called before a successful switchyard_init");
            };
            let key_len = key_len as u32 as usize;
            assert!(key_len <= KEY_CAPACITY, "key of {key_len} bytes");
            sys::with_key(key_len, |key| {
                let request = super::request(op, key, flags, exptime, value_len, listener);
                sys::with_plan_buffer(|plan| instance.route(&request, plan)) as i64
            })
        }

        /// `switchyard_on_reply`
        pub fn on_reply<P: Policy>(
            slot: &Slot<P>,
            cookie: i32,
            status: i32,
            op: i32,
            key_len: i32,
        ) -> i64 {
            let mut slot = slot.0.borrow_mut();
            let Some(instance) = slot.as_mut() else {
                panic!("switchyard_on_reply called before a successful switchyard_init");
            };
            let key_len = key_len as u32 as usize;
            assert!(key_len <= KEY_CAPACITY, "key of {key_len} bytes");
            let status = ReplyStatus::from_code(status as u32);
            sys::with_key(key_len, |key| {
                let request = super::reply_request(op, key);
                sys::with_plan_buffer(|plan| {
                    instance.on_reply(cookie as u32, status, &request, plan)
                }) as i64
            })
        }
    }
}
