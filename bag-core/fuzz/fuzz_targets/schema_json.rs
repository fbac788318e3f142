//! `data/schema.json`: parsing must never panic, and every model that parses must get an
//! index layout SQLite accepts (tables, indexes, inserts, duplicate-RID triggers), whatever
//! its names: case twins, `:` in names, quotes, `sqlite_` prefixes, hidden-column look-alikes.
#![no_main]

use deriva_bag_core::fuzzing::create_schema_tables;
use deriva_bag_core::Error;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match create_schema_tables(data) {
        Ok(_) | Err(Error::Model { .. }) => {}
        Err(other) => panic!("a valid model did not open: {other}"),
    }
});
