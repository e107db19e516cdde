//! Shared by the drop-in libraries: links each as the library it replaces, with Xen's soname
//! (`libxengnttab.so.1`, `libxenevtchn.so.1`, from the package name) and the symbol versions of
//! its `symbols.map` (`VERS_1.0`, ...), which the `.symver` directives in its source use.

fn main() {
    let package = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME");
    let library = package.rsplit('-').next().expect("a package name");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=symbols.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libxen{library}.so.1");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/symbols.map");
}
