fn main() {
    let path = std::env::args().nth(1).unwrap();
    let cache = std::env::args().nth(2).unwrap();
    let bag = deriva_bag_core::DatasetBag::open_with(&path, &deriva_bag_core::OpenOptions { cache_dir: Some(cache.into()), ..Default::default() }).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let r = bag.report(&deriva_bag_core::report::ReportOptions::default()).unwrap();
        eprintln!("report {:?} {}", t.elapsed(), r.splits.len());
    }
}
