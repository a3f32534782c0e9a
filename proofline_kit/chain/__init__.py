"""Chain clients shared by every service: ARC and WhatsOnChain over httpx, typed broadcast
outcomes, an ARC-then-WhatsOnChain broadcaster, fee policy cache and merkle proof checks.

Wiring (one pooled ``httpx.AsyncClient`` per process, budgets from the caller's deadline)::

    http = httpx.AsyncClient(limits=httpx.Limits(max_connections=50))
    arc = ArcClient(http, ArcConfig(arc_url, api_key=arc_key))
    woc = WocClient(http, WocConfig(woc_url, network="main", api_key=woc_key))
    report = await Broadcaster([arc, woc]).broadcast(PreparedTx.from_bytes(ef), deadline=Deadline.after(10))
    if report.outcome.kind is OutcomeKind.MISSING_INPUTS: ...
    fees = FeeRateCache(arc)                       # fee = (await fees.rate()).fee_for(raw_size)
    check = await verify_merkle_path(txid, status.merkle_path, woc)   # status = await arc.status(txid)
    block = await woc.block_txids(height)          # every txid of a block, its pages followed
    tree = MerkleTree(block.txids)                 # tree.root == block.header.merkle_root; tree.bump(i, height)
"""

from proofline_kit.outbound.deadline import Deadline
from proofline_kit.outbound.retry import RetryPolicy

from .arc import ArcClient, ArcConfig, ArcSubmitOptions
from .arc_results import ArcHealth, ArcPolicy, ArcTxStatus
from .broadcaster import BatchBroadcastProvider, Broadcaster, BroadcastProvider
from .callbacks import callback_authorized, parse_callback
from .errors import ChainResponseError, ChainUnavailable
from .fees import FeeQuote, FeeRate, FeeRateCache, FeeSource
from .merkle import (
    HeaderSource,
    MerkleTree,
    ProofCheck,
    ProofVerdict,
    merkle_root,
    verify_merkle_path,
    verify_tsc_proof,
)
from .outcomes import ArcStatus, Attempt, BroadcastOutcome, BroadcastReport, OutcomeKind, Provider
from .settings import (
    CallbackSettings,
    ChainClients,
    ChainSettings,
    open_chain_clients,
    read_callback_settings,
    read_chain_settings,
)
from .txbytes import PreparedTx, TxFormatError
from .woc import WocClient, WocConfig
from .woc_results import (
    BlockHeader,
    BlockSummary,
    BlockTxids,
    ChainTip,
    OutpointSpend,
    SpendState,
    TscProof,
    TxChainState,
    TxChainStatus,
    Utxo,
    UtxoPage,
    UtxoScope,
)

__all__ = [
    "ArcClient",
    "ArcConfig",
    "ArcHealth",
    "ArcPolicy",
    "ArcStatus",
    "ArcSubmitOptions",
    "ArcTxStatus",
    "Attempt",
    "BatchBroadcastProvider",
    "BlockHeader",
    "BlockSummary",
    "BlockTxids",
    "BroadcastOutcome",
    "BroadcastProvider",
    "BroadcastReport",
    "Broadcaster",
    "CallbackSettings",
    "ChainClients",
    "ChainResponseError",
    "ChainSettings",
    "ChainTip",
    "ChainUnavailable",
    "Deadline",
    "FeeQuote",
    "FeeRate",
    "FeeRateCache",
    "FeeSource",
    "HeaderSource",
    "MerkleTree",
    "OutcomeKind",
    "OutpointSpend",
    "PreparedTx",
    "ProofCheck",
    "ProofVerdict",
    "Provider",
    "RetryPolicy",
    "SpendState",
    "TscProof",
    "TxChainState",
    "TxChainStatus",
    "TxFormatError",
    "Utxo",
    "UtxoPage",
    "UtxoScope",
    "WocClient",
    "WocConfig",
    "callback_authorized",
    "merkle_root",
    "open_chain_clients",
    "parse_callback",
    "read_callback_settings",
    "read_chain_settings",
    "verify_merkle_path",
    "verify_tsc_proof",
]
