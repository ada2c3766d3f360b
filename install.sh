#!/bin/sh
# install.sh: install or upgrade mailstead as a systemd service on this machine.
#
#   sudo sh install.sh                  build from this source tree (needs Go) and install
#   sudo sh install.sh --binary PATH    install a binary built elsewhere
#   sudo sh install.sh --uninstall      remove the service and the binary; the data stays
#
# Running it again upgrades: a changed binary or unit is installed and the service restarted
# (SIGTERM lets transactions in flight finish); when nothing changed, nothing is touched.
#
# --root DIR (or DESTDIR=DIR) installs below DIR instead of / (packaging and tests). systemctl,
# useradd and chown are still the ones on PATH.
set -eu

unit_name=mailstead.service
user=mailstead

root=${DESTDIR:-}
binary=
action=install

die() {
	printf 'install.sh: %s\n' "$*" >&2
	exit 1
}

say() {
	printf '%s\n' "$*"
}

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--binary)
		[ $# -ge 2 ] || die "--binary needs a path"
		binary=$2
		shift
		;;
	--binary=*) binary=${1#--binary=} ;;
	--root)
		[ $# -ge 2 ] || die "--root needs a directory"
		root=$2
		shift
		;;
	--root=*) root=${1#--root=} ;;
	--uninstall) action=uninstall ;;
	-h | --help)
		usage
		exit 0
		;;
	*) die "unknown argument $1 (try --help)" ;;
	esac
	shift
done
root=${root%/}

bin_path=/usr/local/bin/mailstead
data_dir=/var/lib/mailstead
unit_path=/etc/systemd/system/$unit_name

# The unit is the same text as contrib/systemd/mailstead.service (a test keeps them equal).
unit_text() {
	cat <<EOF
# mailstead: a personal mail server in one binary. Installed by install.sh.
[Unit]
Description=mailstead mail server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=$user
Group=$user
Environment=MAILSTEAD_DATA=$data_dir
ExecStart=$bin_path serve --data $data_dir
Restart=on-failure
RestartSec=5s
# Transactions in flight get 30 s to finish after SIGTERM.
TimeoutStopSec=45s
LimitNOFILE=65536
UMask=0077

# Ports below 1024 without root, and nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The whole file system is read-only but for the data directory.
ProtectSystem=strict
ReadWritePaths=$data_dir
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
# AF_NETLINK: Go lists the network interfaces through it (the admin page's public addresses).
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK

[Install]
WantedBy=multi-user.target
EOF
}

need_root() {
	if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
		die "run me as root: sudo sh $0"
	fi
}

need_systemd() {
	command -v systemctl >/dev/null 2>&1 ||
		die "systemd is needed (systemctl not found). Without it, run: mailstead serve --data DIR under your own supervisor"
	if [ -z "$root" ] && [ ! -d /run/systemd/system ]; then
		die "systemd is not running on this machine (no /run/systemd/system). Run: mailstead serve --data DIR under your own supervisor"
	fi
}

# install_file SRC DEST MODE copies only when the content differs, and prints "changed" if it did.
install_file() {
	if [ -f "$2" ] && cmp -s "$1" "$2"; then
		chmod "$3" "$2"
		return 0
	fi
	mkdir -p "$(dirname "$2")"
	# Copy next to the target and rename: a running binary is replaced, never written over.
	cp "$1" "$2.new"
	chmod "$3" "$2.new"
	mv -f "$2.new" "$2"
	echo changed
}

build_binary() {
	src=$(cd "$(dirname "$0")" && pwd)
	if [ ! -f "$src/go.mod" ] || [ ! -f "$src/main.go" ]; then
		die "no mailstead source next to $0: run it from the source tree, or give --binary PATH"
	fi
	command -v go >/dev/null 2>&1 ||
		die "Go is needed to build mailstead (https://go.dev/dl/), or give a built binary with --binary PATH"
	command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 ||
		die "a C compiler is needed to build mailstead's SQLite driver (apt-get install gcc), or give a built binary with --binary PATH"
	say "building mailstead with $(go version)"
	(cd "$src" && CGO_ENABLED=1 go build -trimpath -o "$tmp/mailstead" .) || die "go build failed"
	binary=$tmp/mailstead
}

# as_user runs a command as the service user, so that nothing in the data directory is ever
# created by root (below --root, for packaging and tests, there is no such user to become).
as_user() {
	if [ -n "$root" ]; then
		"$@"
	else
		runuser -u "$user" -- "$@"
	fi
}

# ready: the service is active and its control socket is up for management commands.
ready() {
	systemctl is-active --quiet "$unit_name" || return 1
	[ -n "$root" ] || [ -S "$data_dir/mailstead.sock" ]
}

print_setup_url() {
	i=0
	until ready; do
		i=$((i + 1))
		if [ $i -ge 30 ]; then
			say "mailstead did not come up within 30 s; see: journalctl -u mailstead -e"
			return 0
		fi
		sleep 1
	done
	# The server's public addresses (and its hostname once DNS points it here), as serve prints them.
	urls=$(as_user "$root$bin_path" urls --data "$root$data_dir" 2>/dev/null) || urls=
	say ""
	case $urls in
	"")
		say "mailstead is running; no public address was found on this machine's interfaces."
		say "Open https://<its public address>/ (journalctl -u mailstead | grep -A3 setup shows the setup link)."
		;;
	*setup\?token=*)
		say "Finish the setup in your browser (the certificate is self-signed until the wizard is done):"
		printf '%s\n' "$urls" | sed 's/^/  /'
		say "(the server logged the same link: journalctl -u mailstead | grep -A3 setup)"
		;;
	*)
		say "mailstead is set up; its admin page:"
		printf '%s\n' "$urls" | sed 's/^/  /'
		;;
	esac
}

do_install() {
	need_root
	need_systemd
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	if [ -z "$binary" ]; then
		build_binary
	fi
	[ -f "$binary" ] || die "no binary at $binary"
	[ -x "$binary" ] || die "$binary is not executable"

	if ! grep -q "^$user:" "$root/etc/passwd" 2>/dev/null; then
		say "creating the system user $user"
		if [ -n "$root" ]; then
			useradd --root "$root" --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
		else
			useradd --system --home-dir "$data_dir" --no-create-home --shell /usr/sbin/nologin "$user"
		fi
	fi
	if [ ! -d "$root$data_dir" ]; then
		mkdir -p "$root$data_dir"
		say "created $data_dir"
	fi
	chown "$user:$user" "$root$data_dir"
	chmod 0700 "$root$data_dir"

	restart=
	if [ -n "$(install_file "$binary" "$root$bin_path" 0755)" ]; then
		say "installed $bin_path"
		restart=yes
	fi
	unit_text >"$tmp/$unit_name"
	if [ -n "$(install_file "$tmp/$unit_name" "$root$unit_path" 0644)" ]; then
		say "installed $unit_path"
		systemctl daemon-reload
		restart=yes
	fi
	systemctl enable --quiet "$unit_name"
	if ! systemctl is-active --quiet "$unit_name"; then
		systemctl start "$unit_name"
		say "started $unit_name"
	elif [ -n "$restart" ]; then
		systemctl restart "$unit_name"
		say "restarted $unit_name with the new version"
	else
		say "mailstead is up to date and running"
	fi
	print_setup_url
	say ""
	say "Run management commands as the service user, for example:"
	say "  sudo -u $user mailstead account list --data $data_dir"
}

do_uninstall() {
	need_root
	need_systemd
	if [ -f "$root$unit_path" ]; then
		systemctl disable --now "$unit_name" || true
		rm -f "$root$unit_path"
		systemctl daemon-reload
		say "removed the $unit_name service"
	else
		say "no $unit_name service installed"
	fi
	if [ -f "$root$bin_path" ]; then
		rm -f "$root$bin_path"
		say "removed $bin_path"
	fi
	say "kept the data in $data_dir and the user $user: your mail is still there."
	say "Back it up (mailstead backup DEST --data $data_dir) before you ever remove it by hand."
}

case $action in
install) do_install ;;
uninstall) do_uninstall ;;
esac
