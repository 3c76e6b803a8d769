"""Self-supervised monocular depth losses and the view-synthesis geometry (monodepth2 recipe).

Tensor code only (no Lightning, no Hydra). Everything follows the recipe that Hoyer et al., "Three
Ways to Improve Semantic Segmentation with Self-Supervised Depth Estimation" (CVPR 2021, §3.1)
take over from monodepth2 (Godard et al., "Digging Into Self-Supervised Monocular Depth
Estimation", ICCV 2019, §3; ``nianticlabs/monodepth2`` ``trainer.py``, ``layers.py``).

Conventions: images are float32 RGB in [0, 1], (B, 3, H, W); disparities are the sigmoid outputs
of the depth decoder in [0, 1], (B, 1, H, W); depths are in the (arbitrary, monocular) scene unit,
(B, 1, H, W); intrinsics K are (B, 3, 3) in pixels of the tensor they are used with, pixel (u, v)
centred at integer coordinates; camera coordinates x right, y down, z forward; a pose T is a
(B, 4, 4) rigid transform mapping points from the *target* camera frame into the *source* camera
frame (p_src = T · p_tgt).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "SSIM_C1", "SSIM_C2", "axis_angle_to_matrix", "backproject", "depth_to_disp",
    "disp_to_depth", "min_reprojection_loss", "photometric_error", "pose_from_parameters",
    "project", "smoothness_loss", "ssim", "warp_frame",
]

SSIM_C1 = 0.01 ** 2
"""SSIM stabiliser C1 = (0.01 · L)² with dynamic range L = 1."""
SSIM_C2 = 0.03 ** 2
"""SSIM stabiliser C2 = (0.03 · L)² with dynamic range L = 1."""


def _check_images(a: torch.Tensor, b: torch.Tensor, fn: str) -> None:
    if a.ndim != 4 or a.shape != b.shape:
        raise ValueError(f"{fn}: expected two (B, C, H, W) tensors of the same shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-pixel structural *dissimilarity* (1 − SSIM) / 2 in [0, 1] on 3×3 windows.

    monodepth2's SSIM (Godard et al. 2019, Eq. 1; Wang et al. 2004): local means, variances and
    covariance from 3×3 average pooling over a 1-pixel **reflection**-padded input, C1 = 0.01²,
    C2 = 0.03²; the result is clamped to [0, 1].

    Args:
        x, y: (B, C, H, W) float images in [0, 1], H, W ≥ 2.

    Returns:
        (B, C, H, W) float tensor, 0 where the two images agree locally.

    Raises:
        ValueError: shapes differ or are not 4-D.
    """
    _check_images(x, y, "ssim")
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    yp = F.pad(y, (1, 1, 1, 1), mode="reflect")
    mu_x = F.avg_pool2d(xp, 3, 1)
    mu_y = F.avg_pool2d(yp, 3, 1)
    sigma_x = F.avg_pool2d(xp * xp, 3, 1) - mu_x ** 2
    sigma_y = F.avg_pool2d(yp * yp, 3, 1) - mu_y ** 2
    sigma_xy = F.avg_pool2d(xp * yp, 3, 1) - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    den = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    return torch.clamp((1 - num / den) / 2, 0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.85,
                      use_ssim: bool = True) -> torch.Tensor:
    """pe(a, b) = α · (1 − SSIM(a, b)) / 2 + (1 − α) · |a − b|, averaged over channels.

    Godard et al. 2019, Eq. 1 with α = 0.85 (monodepth2 trainer.py). With ``use_ssim=False`` only the L1
    term (weight 1) is used, as monodepth2's ``no_ssim`` option.

    Args:
        pred, target: (B, C, H, W) float images in [0, 1].

    Returns:
        (B, 1, H, W) float32 error map, ≥ 0 (0 for identical images).
    """
    _check_images(pred, target, "photometric_error")
    l1 = (target - pred).abs().mean(1, keepdim=True)
    if not use_ssim:
        return l1
    return alpha * ssim(pred, target).mean(1, keepdim=True) + (1 - alpha) * l1


def disp_to_depth(disp: torch.Tensor, min_depth: float = 0.1,
                  max_depth: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Map sigmoid disparity σ ∈ [0, 1] to depth D = 1 / (1/max + (1/min − 1/max) · σ).

    monodepth2 ``disp_to_depth`` (``layers.py``: min 0.1, max 100).

    Returns:
        (scaled disparity in [1/max_depth, 1/min_depth], depth in [min_depth, max_depth]), both of
        the shape of ``disp``.

    Raises:
        ValueError: not 0 < min_depth < max_depth.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    scaled = min_disp + (max_disp - min_disp) * disp
    return scaled, 1.0 / scaled


def depth_to_disp(depth: torch.Tensor, min_depth: float = 0.1,
                  max_depth: float = 100.0) -> torch.Tensor:
    """Inverse of :func:`disp_to_depth`: σ = (1/D − 1/max) / (1/min − 1/max), same shape."""
    if not 0 < min_depth < max_depth:
        raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return (1.0 / depth - min_disp) / (max_disp - min_disp)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: (B, 3) axis-angle vectors (radians = norm) → (B, 3, 3) rotations."""
    if axis_angle.ndim != 2 or axis_angle.shape[1] != 3:
        raise ValueError(f"axis_angle must be (B, 3), got {tuple(axis_angle.shape)}")
    angle = axis_angle.norm(dim=1, keepdim=True)  # (B, 1)
    axis = axis_angle / (angle + 1e-7)
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    c, s = torch.cos(angle[:, 0]), torch.sin(angle[:, 0])
    C = 1 - c
    rot = torch.stack([
        x * x * C + c, x * y * C - z * s, x * z * C + y * s,
        y * x * C + z * s, y * y * C + c, y * z * C - x * s,
        z * x * C - y * s, z * y * C + x * s, z * z * C + c,
    ], dim=1)
    return rot.view(-1, 3, 3)


def pose_from_parameters(axis_angle: torch.Tensor, translation: torch.Tensor,
                         invert: bool = False) -> torch.Tensor:
    """4×4 rigid transform from a 6-DoF pose (monodepth2 ``transformation_from_parameters``).

    T = [R | t] (rotate, then translate). With ``invert`` the inverse [Rᵀ | −Rᵀ t] is returned, which
    is how the pose predicted for the pair (frame −1, frame 0) becomes the target→source transform
    of frame −1 (Godard et al. 2019, §3; monodepth2 ``trainer.py``).

    Args:
        axis_angle: (B, 3) rotation as axis · angle (radians).
        translation: (B, 3) translation (scene units).

    Returns:
        (B, 4, 4) float tensor.
    """
    if translation.ndim != 2 or translation.shape[1] != 3:
        raise ValueError(f"translation must be (B, 3), got {tuple(translation.shape)}")
    rot = axis_angle_to_matrix(axis_angle)
    t = translation.unsqueeze(-1)
    if invert:
        rot = rot.transpose(1, 2)
        t = -rot @ t
    top = torch.cat([rot, t], dim=2)
    bottom = torch.zeros_like(top[:, :1])
    bottom[..., 3] = 1.0
    return torch.cat([top, bottom], dim=1)


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a 3-D point in the camera frame: P = D · K⁻¹ (u, v, 1)ᵀ.

    Args:
        depth: (B, 1, H, W) depth along the optical axis (> 0).
        K: (B, 3, 3) intrinsics in pixels of this H × W grid.

    Returns:
        (B, 3, H·W) camera-frame points, pixels in row-major order.
    """
    b, _, h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype, device=depth.device),
                          torch.arange(w, dtype=depth.dtype, device=depth.device), indexing="ij")
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)], 0)
    rays = torch.linalg.inv(K.to(depth.dtype)) @ pix.unsqueeze(0).expand(b, -1, -1)
    return rays * depth.reshape(b, 1, -1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int,
            width: int, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform target-frame points by T and project them with K.

    Args:
        points: (B, 3, N) points in the target camera frame, N = height · width.
        K: (B, 3, 3) intrinsics of the source image; T: (B, 4, 4) target → source transform.
        height, width: size of the pixel grid the points came from.

    Returns:
        (grid (B, H, W, 2) in ``grid_sample``'s [−1, 1] coordinates with align_corners=False
        semantics matching integer pixel centres, and in_front (B, 1, H, W) bool: the point lies in
        front of the source camera).
    """
    b = points.shape[0]
    rot, t = T[:, :3, :3].to(points.dtype), T[:, :3, 3:].to(points.dtype)
    cam = K.to(points.dtype) @ (rot @ points + t)
    z = cam[:, 2:3]
    in_front = (z > eps).reshape(b, 1, height, width)
    uv = cam[:, :2] / z.clamp(min=eps)
    u = uv[:, 0].reshape(b, height, width)
    v = uv[:, 1].reshape(b, height, width)
    # pixel centre u ↦ normalised (2u + 1)/W − 1 (align_corners=False)
    grid = torch.stack([(2 * u + 1) / width - 1, (2 * v + 1) / height - 1], dim=-1)
    return grid, in_front


def warp_frame(source: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
               T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthesise the target view from a source frame (inverse warping, Godard et al. 2019, Eq. 2).

    Every target pixel is back-projected with its depth, moved into the source frame by T,
    projected with K and the source sampled bilinearly there (``border`` padding, as monodepth2).

    Args:
        source: (B, C, H, W) source image.
        depth: (B, 1, H, W) target depth; K: (B, 3, 3) intrinsics in pixels of H × W (the same
            camera for both frames); T: (B, 4, 4) target → source transform.

    Returns:
        (warped (B, C, H, W), valid (B, 1, H, W) bool: the projection lands inside the source image
        and in front of its camera).

    Raises:
        ValueError: spatial sizes of ``source`` and ``depth`` differ.
    """
    if source.shape[-2:] != depth.shape[-2:] or depth.shape[1] != 1:
        raise ValueError(f"warp_frame: source {tuple(source.shape)} and depth "
                         f"{tuple(depth.shape)} must share H, W and depth must be (B, 1, H, W)")
    h, w = depth.shape[-2:]
    grid, in_front = project(backproject(depth, K), K, T, h, w)
    warped = F.grid_sample(source, grid.to(source.dtype), mode="bilinear",
                           padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1).unsqueeze(1)
    return warped, inside & in_front


def min_reprojection_loss(target: torch.Tensor, warped: list[torch.Tensor],
                          sources: list[torch.Tensor] | None = None, use_ssim: bool = True,
                          noise: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum reprojection loss with auto-masking (Godard et al. 2019, Eq. 4 and §3.3).

    L_p = mean over pixels of min( pe(I_t, I_{s→t}) for every source s,
    pe(I_t, I_s) for every unwarped source s [+ N(0, noise²) to break ties] ). The identity terms
    are the auto-mask: where a static or camera-synchronous pixel is better explained by not
    moving, the minimum picks it and the pixel gives no depth gradient.

    Args:
        target: (B, 3, H, W) target image; warped: the source images warped into the target;
        sources: the unwarped source images (None: no auto-masking).
        noise: standard deviation of the tie-breaking noise on the identity errors (0 = none).

    Returns:
        (scalar loss, (B, 1, H, W) bool mask of pixels where a warped source won the minimum).

    Raises:
        ValueError: ``warped`` is empty.
    """
    if not warped:
        raise ValueError("min_reprojection_loss needs at least one warped source")
    reprojection = torch.cat([photometric_error(w, target, use_ssim=use_ssim) for w in warped], 1)
    if sources:
        identity = torch.cat([photometric_error(s, target, use_ssim=use_ssim) for s in sources], 1)
        if noise > 0:
            identity = identity + torch.randn_like(identity) * noise
        combined = torch.cat([identity, reprojection], 1)
    else:
        identity, combined = None, reprojection
    best, index = combined.min(dim=1, keepdim=True)
    first_warped = identity.shape[1] if identity is not None else 0
    return best.mean(), index >= first_warped


def smoothness_loss(disp: torch.Tensor, image: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Edge-aware smoothness (Godard et al. 2017/2019, Eq. 3) on mean-normalised disparity.

    L_s = mean|∂x d*| · e^{−|∂x I|} + mean|∂y d*| · e^{−|∂y I|}, with d* = d / mean(d) per image
    (``normalize``) and image gradients averaged over colour channels.

    Args:
        disp: (B, 1, H, W) disparity; image: (B, 3, H, W) image in [0, 1] of the same size.

    Returns:
        Scalar ≥ 0 (0 for a constant disparity).
    """
    if disp.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"smoothness_loss: disp {tuple(disp.shape)} and image "
                         f"{tuple(image.shape)} must have the same H, W")
    if normalize:
        disp = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
    dx = (disp[..., :, :-1] - disp[..., :, 1:]).abs()
    dy = (disp[..., :-1, :] - disp[..., 1:, :]).abs()
    ix = (image[..., :, :-1] - image[..., :, 1:]).abs().mean(1, keepdim=True)
    iy = (image[..., :-1, :] - image[..., 1:, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()
