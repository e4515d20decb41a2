"""stochgrad: gradients of objectives that contain randomness.

Gradient estimators for expectations (REINFORCE, reparameterization, REBAR, LAX,
RELAX, DLAX; paper 003/004), entropy gradients for implicit samplers (AR-DAE,
paper 000) and SVGD with closed-form entropy (S2AC, paper 002).
"""

__version__ = "0.1.0"
