//! Prints an sdkfileid the emulator serves as a file of the given size (bytes), for demos and
//! manual checks: `cargo run -p wecom-sdk-emulator --example media_file_id -- 12582912`.

fn main() {
    let size = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: media_file_id SIZE_IN_BYTES");
    println!("{}", WeWorkFinanceSdk_C::media_file_id(size, 1, size));
}
