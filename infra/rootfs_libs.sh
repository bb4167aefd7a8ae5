# Sourced by infra/build_platform_image.sh, build_offline_images.sh and
# build_sandbox_images.sh: what an image rootfs made from this machine's files needs besides
# them. Reads PY_PREFIX and SITE (the
# platform's interpreter and site-packages: libpython is copied, the site's own libraries stay
# where they are); a caller without them sets both to a path that does not exist.
# Copy the shared libraries every ELF file under $1 needs into $1/lib/x86_64-linux-gnu
# (libraries already inside the tree, found through their RPATH, stay where they are).
copy_libs() {
  local rootfs=$1 libdir=$1/lib/x86_64-linux-gnu
  mkdir -p "$libdir" "$rootfs/lib64"
  find "$rootfs" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
    xargs -0 file -N | grep -E 'ELF .* (shared object|executable)' | cut -d: -f1 |
    xargs -r ldd 2>/dev/null | awk '/=> \//{print $3}' | sort -u |
    while read -r lib; do
      case $lib in
        "$PY_PREFIX"/lib/libpython*) ;;
        "$SITE"/* | "$rootfs"/*) continue ;;
      esac
      cp -nL "$lib" "$libdir/"
    done
  cp -L /lib64/ld-linux-x86-64.so.2 "$rootfs/lib64/"
}
