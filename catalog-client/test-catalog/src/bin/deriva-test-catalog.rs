//! `deriva-test-catalog [--port N] [--owner] [--bag DIR]`: runs the local ERMrest/Hatrac test
//! catalog on 127.0.0.1 (seeded with the built-in demo dataset, or with the dataset bag `DIR`)
//! until killed, after printing one JSON line
//! `{"url": "http://127.0.0.1:PORT", "catalog_id": "1", "token": "test-token"}`.

use deriva_test_catalog::{Seed, TestCatalog, TestCatalogOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut options = TestCatalogOptions::default();
    let mut seed = Seed::Builtin;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => {
                    eprintln!("deriva-test-catalog: --port needs a number");
                    std::process::exit(2);
                }
            },
            "--owner" => options.owner = true,
            "--bag" => match args.next() {
                Some(p) => seed = Seed::Bag(p.into()),
                None => {
                    eprintln!("deriva-test-catalog: --bag needs a bag directory");
                    std::process::exit(2);
                }
            },
            "-h" | "--help" => {
                println!("usage: deriva-test-catalog [--port N] [--owner] [--bag DIR]");
                return;
            }
            other => {
                eprintln!("deriva-test-catalog: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    let catalog_id = options.catalog_id.clone();
    match TestCatalog::start_seeded(seed, options, port) {
        Ok(server) => {
            println!(
                "{}",
                serde_json::json!({"url": server.url(), "catalog_id": catalog_id, "token": server.token()})
            );
            server.wait();
        }
        Err(e) => {
            eprintln!("deriva-test-catalog: {e}");
            std::process::exit(1);
        }
    }
}
