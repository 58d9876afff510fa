//! libpq's fast-path function calls, as the SQL they stand for.
//!
//! libpq's large-object API (`lo_open`, `lo_read`, `lo_write`, `lo_import`
//! and `lo_export` on the client side, as used by psql's `\lo_*` and by
//! `pg_dump`/`pg_restore`) sends FunctionCall messages naming a function by
//! OID. The gateway translates each into the `SELECT` it is equivalent to,
//! so it is classified, decided, held and recorded like that statement,
//! then forwards the original message. Only built-in large-object functions
//! are translated: their OIDs are fixed below PostgreSQL's first user OID
//! (16384), so a client cannot point one at a function of its own. Any
//! other OID is refused.

use crate::codec::frontend::FunctionCall;

/// The built-in functions libpq calls by fast path: OID, name, and which
/// argument (if any) is data rather than an integer.
const FUNCTIONS: &[(u32, &str, Option<usize>)] = &[
    (715, "lo_create", None),
    (952, "lo_open", None),
    (953, "lo_close", None),
    (954, "loread", None),
    (955, "lowrite", Some(1)),
    (956, "lo_lseek", None),
    (957, "lo_creat", None),
    (958, "lo_tell", None),
    (964, "lo_unlink", None),
    (1004, "lo_truncate", None),
    (3170, "lo_lseek64", None),
    (3171, "lo_tell64", None),
    (3172, "lo_truncate64", None),
];

/// The `SELECT` a fast-path call is equivalent to, with its integer
/// arguments written out and a data argument as a `$n` placeholder (its
/// bytes are not recorded, only their count); or why it is refused.
pub fn as_sql(call: &FunctionCall<'_>) -> Result<String, String> {
    let Some(&(_, name, data_arg)) = FUNCTIONS.iter().find(|(oid, ..)| *oid == call.oid) else {
        return Err(format!(
            "the fast-path call of function OID {} is not one of libpq's large-object functions, the only ones gatehouse relays this way",
            call.oid
        ));
    };
    let mut args = Vec::with_capacity(call.args.len());
    let mut data = None;
    for i in 0..call.args.len() {
        if Some(i) == data_arg {
            data = Some((i + 1, call.args[i].map_or(0, <[u8]>::len)));
            args.push(format!("${}", i + 1));
        } else {
            match call.int_arg(i) {
                Some(v) => args.push(v.to_string()),
                None => {
                    return Err(format!(
                        "argument {} of the fast-path call of {name} is not an integer gatehouse can read",
                        i + 1
                    ))
                }
            }
        }
    }
    let mut sql = format!("SELECT pg_catalog.{name}({})", args.join(", "));
    if let Some((n, len)) = data {
        sql.push_str(&format!(" -- fast-path call; ${n} is {len} bytes"));
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(oid: u32, formats: Vec<i16>, args: Vec<Option<&'a [u8]>>) -> FunctionCall<'a> {
        FunctionCall {
            oid,
            arg_formats: formats,
            args,
            result_format: 1,
        }
    }

    #[test]
    fn large_object_calls_read_as_their_select() {
        let fd = 0i32.to_be_bytes();
        let len = 8192i32.to_be_bytes();
        let read = call(954, vec![1], vec![Some(&fd), Some(&len)]);
        assert_eq!(as_sql(&read).unwrap(), "SELECT pg_catalog.loread(0, 8192)");
        let write = call(955, vec![1, 1], vec![Some(&fd), Some(b"123-45-6789")]);
        let sql = as_sql(&write).unwrap();
        assert_eq!(
            sql,
            "SELECT pg_catalog.lowrite(0, $2) -- fast-path call; $2 is 11 bytes"
        );
        assert!(!sql.contains("6789"), "data is never written out");
        let off = (-5i64).to_be_bytes();
        let seek = call(3170, vec![1], vec![Some(&fd), Some(&off), Some(&fd)]);
        assert_eq!(
            as_sql(&seek).unwrap(),
            "SELECT pg_catalog.lo_lseek64(0, -5, 0)"
        );
    }

    #[test]
    fn other_functions_and_unreadable_arguments_are_refused() {
        assert!(as_sql(&call(1317, vec![], vec![])).is_err(), "length(text)");
        assert!(
            as_sql(&call(16384, vec![], vec![])).is_err(),
            "a user function"
        );
        let odd = call(954, vec![1], vec![Some(b"abc"), Some(b"defg")]);
        assert!(as_sql(&odd).is_err());
        let text = call(964, vec![0], vec![Some(b"16403")]);
        assert_eq!(as_sql(&text).unwrap(), "SELECT pg_catalog.lo_unlink(16403)");
    }
}
