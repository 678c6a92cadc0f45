//! `bit` for scripts (Redis bundles LuaBitOp 1.0): every operation works on
//! the 32-bit two's-complement image of its arguments and returns a signed
//! 32-bit number, as LuaBitOp does on a double-number Lua 5.1.

//!
//! The functions are C functions over mlua's `ffi` (not Rust closures): the
//! SHA-256 of waitpoint tokens makes thousands of calls per token, and a
//! closure's argument conversion costs several times the operation.

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table};
use std::ffi::c_int;

/// LuaBitOp's argument conversion: add 2^52 + 2^51 and keep the low 32 bits
/// of the double's mantissa (rounds to nearest even, wraps modulo 2^32).
fn to_u32(d: f64) -> u32 {
    (d + 6_755_399_441_055_744.0).to_bits() as u32
}

fn out(v: u32) -> f64 {
    v as i32 as f64
}

/// Argument `i` as LuaBitOp reads it (a non-number raises "bad argument").
///
/// # Safety
/// `l` is the state of a running C function call.
unsafe fn arg(l: *mut lua_State, i: c_int) -> u32 {
    to_u32(ffi::luaL_checknumber(l, i))
}

/// Push one result.
///
/// # Safety
/// `l` is the state of a running C function call.
unsafe fn ret(l: *mut lua_State, v: u32) -> c_int {
    ffi::lua_pushnumber(l, out(v));
    1
}

macro_rules! unary {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            let f: fn(u32) -> u32 = $f;
            ret(l, f(arg(l, 1)))
        }
    };
}

macro_rules! fold {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            let f: fn(u32, u32) -> u32 = $f;
            let mut acc = arg(l, 1);
            for i in 2..=ffi::lua_gettop(l) {
                acc = f(acc, arg(l, i));
            }
            ret(l, acc)
        }
    };
}

// The shift count is taken modulo 32, as LuaBitOp does.
macro_rules! shift {
    ($name:ident, $f:expr) => {
        unsafe extern "C-unwind" fn $name(l: *mut lua_State) -> c_int {
            let f: fn(u32, u32) -> u32 = $f;
            ret(l, f(arg(l, 1), arg(l, 2) & 31))
        }
    };
}

unary!(tobit, |x| x);
unary!(bnot, |x| !x);
unary!(bswap, u32::swap_bytes);
fold!(band, |a, b| a & b);
fold!(bor, |a, b| a | b);
fold!(bxor, |a, b| a ^ b);
shift!(lshift, |x, n| x << n);
shift!(rshift, |x, n| x >> n);
shift!(arshift, |x, n| ((x as i32) >> n) as u32);
shift!(rol, u32::rotate_left);
shift!(ror, u32::rotate_right);

/// tohex(x [, n]): n digits (default 8); a negative n asks for upper case.
unsafe extern "C-unwind" fn tohex(l: *mut lua_State) -> c_int {
    let v = arg(l, 1);
    let n = if ffi::lua_gettop(l) >= 2 && ffi::lua_isnil(l, 2) == 0 {
        arg(l, 2) as i32
    } else {
        8
    };
    let width = n.unsigned_abs().min(8) as usize;
    let hex = if n < 0 {
        format!("{v:08X}")
    } else {
        format!("{v:08x}")
    };
    let digits = &hex.as_bytes()[8 - width..];
    ffi::lua_pushlstring(l, digits.as_ptr().cast(), digits.len());
    1
}

/// The `bit` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let fns: [(&str, ffi::lua_CFunction); 12] = [
        ("tobit", tobit),
        ("bnot", bnot),
        ("bswap", bswap),
        ("band", band),
        ("bor", bor),
        ("bxor", bxor),
        ("lshift", lshift),
        ("rshift", rshift),
        ("arshift", arshift),
        ("rol", rol),
        ("ror", ror),
        ("tohex", tohex),
    ];
    for (name, f) in fns {
        // SAFETY: each function reads its arguments with luaL_checknumber
        // (which raises a Lua error on a bad one, before anything else is
        // done: no Rust value with a destructor is live) and pushes one number
        // or string.
        t.set(name, unsafe { lua.create_c_function(f)? })?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> String {
        let lua = Lua::new();
        lua.globals().set("bit", table(&lua).unwrap()).unwrap();
        lua.load(code).eval::<String>().unwrap()
    }

    #[test]
    fn results_are_signed_32_bit() {
        // Values checked against redis-server 7.0's `bit` (EVAL).
        assert_eq!(eval("return tostring(bit.tobit(0xffffffff))"), "-1");
        assert_eq!(eval("return tostring(bit.tobit(2^32 + 5))"), "5");
        assert_eq!(eval("return tostring(bit.bnot(0))"), "-1");
        assert_eq!(eval("return tostring(bit.lshift(1, 31))"), "-2147483648");
        assert_eq!(eval("return tostring(bit.rshift(-1, 28))"), "15");
        assert_eq!(eval("return tostring(bit.arshift(-256, 4))"), "-16");
        assert_eq!(eval("return tostring(bit.ror(1, 1))"), "-2147483648");
        assert_eq!(eval("return tostring(bit.rol(0x80000000, 1))"), "1");
        assert_eq!(eval("return tostring(bit.bxor(1, 2, 4, 8))"), "15");
        assert_eq!(eval("return tostring(bit.band(-1, 0xff, 0x0f))"), "15");
        assert_eq!(eval("return tostring(bit.lshift(1, 33))"), "2");
        assert_eq!(eval("return bit.tohex(-1)"), "ffffffff");
        assert_eq!(eval("return bit.tohex(255, 2)"), "ff");
        assert_eq!(eval("return bit.tohex(255, -4)"), "00FF");
        assert_eq!(eval("return tostring(bit.bswap(0x12345678))"), "2018915346");
    }
}
