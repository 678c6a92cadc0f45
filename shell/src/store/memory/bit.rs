//! `bit` for scripts (Redis bundles LuaBitOp 1.0): every operation works on
//! the 32-bit two's-complement image of its arguments and returns a signed
//! 32-bit number, as LuaBitOp does on a double-number Lua 5.1.

use mlua::{Lua, Table, Variadic};

/// LuaBitOp's argument conversion: add 2^52 + 2^51 and keep the low 32 bits
/// of the double's mantissa (rounds to nearest even, wraps modulo 2^32).
fn to_u32(d: f64) -> u32 {
    (d + 6_755_399_441_055_744.0).to_bits() as u32
}

fn out(v: u32) -> f64 {
    v as i32 as f64
}

fn unary(lua: &Lua, t: &Table, name: &str, f: fn(u32) -> u32) -> mlua::Result<()> {
    t.set(
        name,
        lua.create_function(move |_, x: f64| Ok(out(f(to_u32(x)))))?,
    )
}

fn shift(lua: &Lua, t: &Table, name: &str, f: fn(u32, u32) -> u32) -> mlua::Result<()> {
    // The shift count is taken modulo 32, as LuaBitOp does.
    t.set(
        name,
        lua.create_function(move |_, (x, n): (f64, f64)| Ok(out(f(to_u32(x), to_u32(n) & 31))))?,
    )
}

fn fold(lua: &Lua, t: &Table, name: &str, f: fn(u32, u32) -> u32) -> mlua::Result<()> {
    t.set(
        name,
        lua.create_function(move |_, (first, rest): (f64, Variadic<f64>)| {
            Ok(out(rest
                .iter()
                .fold(to_u32(first), |acc, &x| f(acc, to_u32(x)))))
        })?,
    )
}

/// The `bit` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    unary(lua, &t, "tobit", |x| x)?;
    unary(lua, &t, "bnot", |x| !x)?;
    unary(lua, &t, "bswap", u32::swap_bytes)?;
    fold(lua, &t, "band", |a, b| a & b)?;
    fold(lua, &t, "bor", |a, b| a | b)?;
    fold(lua, &t, "bxor", |a, b| a ^ b)?;
    shift(lua, &t, "lshift", |x, n| x << n)?;
    shift(lua, &t, "rshift", |x, n| x >> n)?;
    shift(lua, &t, "arshift", |x, n| ((x as i32) >> n) as u32)?;
    shift(lua, &t, "rol", u32::rotate_left)?;
    shift(lua, &t, "ror", u32::rotate_right)?;
    t.set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            // n digits (default 8); a negative n asks for upper case.
            let n = n.map_or(8, |n| to_u32(n) as i32);
            let (upper, width) = (n < 0, n.unsigned_abs().min(8) as usize);
            let v = to_u32(x);
            let hex = if upper {
                format!("{v:08X}")
            } else {
                format!("{v:08x}")
            };
            Ok(hex[8 - width..].to_owned())
        })?,
    )?;
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
