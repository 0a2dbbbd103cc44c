"""``minipki`` / ``python -m pki``: the kubeadm-shaped command line over the pki package.

    minipki init --dir _run --node node1=127.0.0.1     # kubeadm init phase certs + kubeconfig
    minipki inspect _run/pki/apiserver.crt --ca _run/pki/ca.crt
    minipki check-expiration --dir _run               # kubeadm certs check-expiration
    minipki kubeconfig --dir _run --user bob --group dev -o bob.conf   # kubeadm kubeconfig user
    minipki sign-csr req.pem --dir _run --signer-name kubernetes.io/kube-apiserver-client

User errors (missing files, malformed PEM, refused CSRs) print one line and exit 1; argparse usage
errors exit 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from pki import expiration
from pki.certinfo import chains_to, describe
from pki.certs import issue_cert, make_key, utcnow
from pki.errors import PemError, PkiError
from pki.files import (
    DEFAULT_DIR,
    PUBLIC_MODE,
    Layout,
    read_cert,
    read_client_config,
    read_key,
    write_atomic,
    write_kubeconfig,
)
from pki.identities import DEFAULT_APISERVER_URL, DEFAULT_SERVICE_CIDR
from pki.init import init_pki
from pki.kubeconfig import ClientCertData, build_kubeconfig
from pki.pem import dump_cert_pem, dump_key_pem, load_cert_pem
from pki.signer import KUBE_APISERVER_CLIENT, KUBELET_SERVING, sign_csr

_DEFAULT_USAGES = {
    KUBELET_SERVING: ["digital signature", "key encipherment", "server auth"],
}
_CLIENT_USAGES = ["digital signature", "key encipherment", "client auth"]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (PkiError, OSError) as e:
        print(f"minipki: error: {e}", file=sys.stderr)
        return 1


def _cmd_init(args: argparse.Namespace) -> int:
    nodes = args.node or ["node1"]
    node_ips = {}
    for spec in nodes:
        name, _, ip = spec.partition("=")
        if ip:
            node_ips[name] = ip
    result = init_pki(
        args.dir,
        apiserver_url=args.apiserver_url,
        extra_sans=[s for item in args.apiserver_cert_extra_sans for s in item.split(",") if s],
        service_cidr=args.service_cidr,
        nodes=[spec.partition("=")[0] for spec in nodes],
        node_ips=node_ips,
        force=args.force,
        key_type=args.key_type,
    )
    for path in result.kept:
        print(f"[pki] using existing {path.relative_to(result.root)}")
    for path in result.created:
        print(f"[pki] wrote {path.relative_to(result.root)}")
    print(f"[pki] {len(result.created)} files written, {len(result.kept)} kept, under {result.root}")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    cert = _load_any_cert(Path(args.file))
    info = describe(cert)
    now = utcnow()
    rows = [
        ("subject", info.subject),
        ("issuer", info.issuer),
        ("serial", f"{info.serial:x}"),
        ("public key", info.public_key),
        ("is CA", "yes" if info.is_ca else "no"),
        ("not before", info.not_before.isoformat()),
        ("not after", f"{info.not_after.isoformat()} ({_residual(info.not_after - now)})"),
        ("DNS names", ", ".join(info.dns_names) or "-"),
        ("IP addresses", ", ".join(info.ip_addresses) or "-"),
        ("key usages", ", ".join(info.key_usages) or "-"),
        ("ext key usages", ", ".join(info.extended_usages) or "-"),
    ]
    if args.ca:
        rows.append(("chains to CA", "yes" if chains_to(cert, read_cert(Path(args.ca))) else "no"))
    for label, value in rows:
        print(f"{label + ':':<16}{value}")
    return 0


def _cmd_check_expiration(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.dir))
    if not layout.ca_crt.exists():
        raise PkiError(f"no CA at {layout.ca_crt}; run 'minipki init --dir {args.dir}' first")
    print(expiration.render(*expiration.collect(layout)), end="")
    return 0


def _cmd_kubeconfig(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.dir))
    ca_cert, ca_key = read_cert(layout.ca_crt), read_key(layout.ca_key)
    key = make_key(args.key_type)
    cert = issue_cert(ca_cert, ca_key, key.public_key(), args.user, args.group, client=True, days=args.days)
    credential = ClientCertData(dump_cert_pem(cert), dump_key_pem(key))
    config = build_kubeconfig(
        server=args.server, ca_pem=dump_cert_pem(ca_cert), user=args.user, credential=credential
    )
    write_kubeconfig(Path(args.output), config)
    print(f"wrote {args.output} for user {args.user!r} in groups {args.group}")
    return 0


def _cmd_sign_csr(args: argparse.Namespace) -> int:
    layout = Layout(Path(args.dir))
    usages = args.usage or _DEFAULT_USAGES.get(args.signer_name, _CLIENT_USAGES)
    pem = sign_csr(
        Path(args.csr).read_bytes(),
        read_cert(layout.ca_crt),
        read_key(layout.ca_key),
        signer_name=args.signer_name,
        usages=usages,
        duration_seconds=args.expiration_seconds,
    )
    if args.output == "-":
        sys.stdout.write(pem.decode())
    else:
        write_atomic(Path(args.output), pem, PUBLIC_MODE)
    return 0


def _load_any_cert(path: Path) -> x509.Certificate:
    """A PEM certificate file, or the client certificate inside a kubeconfig."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return load_cert_pem(data)
    problem = f"{path} holds neither a PEM certificate nor a kubeconfig with a client certificate"
    try:
        credential = read_client_config(path).credential
    except PkiError:
        raise PemError(problem) from None
    if not isinstance(credential, ClientCertData):
        raise PemError(problem)
    return load_cert_pem(credential.cert_pem)


def _residual(delta: dt.timedelta) -> str:
    text = expiration.short_human_duration(delta)
    return "expired" if text in ("<invalid>", "0s") else f"{text} left"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minipki", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create (or complete) the cluster PKI directory")
    _dir(p)
    p.add_argument("--apiserver-url", default=DEFAULT_APISERVER_URL)
    p.add_argument("--apiserver-cert-extra-sans", action="append", default=[], metavar="SAN[,SAN]")
    p.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR)
    p.add_argument("--node", action="append", metavar="NAME[=IP]", help="repeatable; default node1")
    p.add_argument("--force", action="store_true", help="regenerate everything, the CA included")
    _key_type(p)
    p.set_defaults(run=_cmd_init)

    p = sub.add_parser("inspect", help="print a certificate (or a kubeconfig's client certificate)")
    p.add_argument("file")
    p.add_argument("--ca", help="also check that the certificate chains to this CA")
    p.set_defaults(run=_cmd_inspect)

    p = sub.add_parser("check-expiration", help="when does each certificate expire")
    _dir(p)
    p.set_defaults(run=_cmd_check_expiration)

    p = sub.add_parser("kubeconfig", help="a kubeconfig for a new client identity signed by the CA")
    _dir(p)
    p.add_argument("--user", required=True, help="certificate CN = user name")
    p.add_argument("--group", action="append", default=[], help="certificate O = group; repeatable")
    p.add_argument("--server", default=DEFAULT_APISERVER_URL)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("-o", "--output", required=True)
    _key_type(p)
    p.set_defaults(run=_cmd_kubeconfig)

    p = sub.add_parser("sign-csr", help="sign a CSR as the controller-manager's signer would")
    p.add_argument("csr", help="PEM CERTIFICATE REQUEST file")
    _dir(p)
    p.add_argument("--signer-name", default=KUBE_APISERVER_CLIENT)
    p.add_argument("--usage", action="append", help="repeatable; default depends on the signer")
    p.add_argument("--expiration-seconds", type=int)
    p.add_argument("-o", "--output", default="-")
    p.set_defaults(run=_cmd_sign_csr)
    return parser


def _dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=str(DEFAULT_DIR), help=f"PKI directory (default {DEFAULT_DIR})")


def _key_type(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-type", choices=["rsa", "ec"], default="rsa", help="rsa (2048, default) or ec (P-256)"
    )


if __name__ == "__main__":
    sys.exit(main())
